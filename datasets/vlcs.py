"""VLCS (Torralba and Efros, CVPR 2011) for few-shot leave-one-domain-out domain generalization
(MetaPrompt's VLCSFS on Dassl's layout): 5 classes, 4 domains (caltech, labelme, pascal, sun).

Val: the source domains' crossval folders; test: the held-out domain's test folder. Labels follow the
sorted class folders; class names are bird, car, chair, dog, person by label (Dassl's VLCS leaves them
empty; the MetaPrompt code names them so). The protocol is described in vlprompt/data/dg.py.
"""
import os

from vlprompt.data.dg import FewShotDGDataset
from vlprompt.engine import DATASET_REGISTRY, Datum

CLASSNAMES = ["bird", "car", "chair", "dog", "person"]


@DATASET_REGISTRY.register()
class VLCSFS(FewShotDGDataset):
    dataset_dir = "VLCS"
    dataset_dir_aliases = ("vlcs",)  # the MetaPrompt code's name
    domains = ["caltech", "labelme", "pascal", "sun"]
    val_split = "crossval"
    test_split = "test"
    layout = """\
VLCS/                                  (or vlcs/)
    CALTECH/{train,crossval,test}/<class folder>/*.jpg
    LABELME/...  PASCAL/...  SUN/...   5 class folders each, sorted order = bird, car, chair, dog, person
"""

    def read_data(self, domains, split):
        items = []
        for domain, name in enumerate(domains):
            split_dir = os.path.join(self.dataset_dir, name.upper(), split)
            for impath, label, _ in self.read_class_folders(split_dir):
                if label >= len(CLASSNAMES):
                    raise self.format_error(split_dir, f"more than {len(CLASSNAMES)} class folders")
                items.append(Datum(impath=impath, label=label, domain=domain, classname=CLASSNAMES[label]))
        return items
