"""DomainNet (Peng et al., ICCV 2019) for few-shot leave-one-domain-out domain generalization
(MetaPrompt's DomainNetFS on Dassl's layout): 345 classes, 6 domains (clipart, infograph, painting,
quickdraw, real, sketch).

Val: the source domains' test lists; test: the held-out domain's test list. Labels are those of the
split files (0-based); class names are the class folder names ("aircraft_carrier"). The protocol is
described in vlprompt/data/dg.py.
"""
import os

from vlprompt.data.dg import FewShotDGDataset
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class DomainNetFS(FewShotDGDataset):
    dataset_dir = "domainnet"
    domains = ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"]
    val_split = "test"
    test_split = "test"
    layout = """\
domainnet/
    clipart/<class>/<file>.jpg  infograph/  painting/  quickdraw/  real/  sketch/
    splits/<domain>_train.txt   "<domain>/<class>/<file>.jpg <label 0..344>" per line
    splits/<domain>_test.txt    (the cleaned split files)
"""

    def read_data(self, domains, split):
        entries, sources = [], []
        for domain, name in enumerate(domains):
            split_file = os.path.join(self.dataset_dir, "splits", f"{name}_{split}.txt")
            sources.append(split_file)
            entries.extend((os.path.join(self.dataset_dir, impath), label, domain, impath.split("/")[1])
                           for impath, label in self.read_image_list(split_file))
        return self.datums(entries, " and ".join(sources))
