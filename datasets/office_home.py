"""Office-Home (Venkateswara et al., CVPR 2017) for few-shot leave-one-domain-out domain generalization
(MetaPrompt's OfficeHomeFS on Dassl's OfficeHomeDG layout): 65 classes, 4 domains (art, clipart,
product, real_world).

Val: the source domains' val folders; test: all of the held-out domain (train + val folders). Labels
follow the sorted class folders (case-sensitive sort, as Dassl); class names are the folder names in
lower case ("Alarm_Clock" -> "alarm_clock"). The protocol is described in vlprompt/data/dg.py.
"""
import os

from vlprompt.data.dg import FewShotDGDataset
from vlprompt.engine import DATASET_REGISTRY, Datum


@DATASET_REGISTRY.register()
class OfficeHomeFS(FewShotDGDataset):
    dataset_dir = "office_home_dg"
    dataset_dir_aliases = ("office_home",)  # the MetaPrompt code's name
    domains = ["art", "clipart", "product", "real_world"]
    val_split = "val"
    test_split = "all"
    layout = """\
office_home_dg/                        (or office_home/)
    art/{train,val}/<Class_Folder>/*.jpg     65 class folders (Alarm_Clock, Backpack, ...)
    clipart/...  product/...  real_world/...
"""

    def read_data(self, domains, split):
        parts = ["train", "val"] if split == "all" else [split]
        items = []
        for domain, name in enumerate(domains):
            for part in parts:
                for impath, label, folder in self.read_class_folders(os.path.join(self.dataset_dir, name, part)):
                    items.append(Datum(impath=impath, label=label, domain=domain, classname=folder.lower()))
        return items
