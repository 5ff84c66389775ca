"""PACS (Li et al., ICCV 2017) for few-shot leave-one-domain-out domain generalization (MetaPrompt's
protocol, implemented by vlprompt.data.dg.FewShotDGDataset, which VLCS, OfficeHome and DomainNet share).

Registered as PACSFS (and VLCSFS, OfficeHomeFS, DomainNetFS): Dassl registers PACS, VLCS, OfficeHomeDG
and DomainNet itself (its full-data readers), and a second registration under the same name fails.
"""
import os

from vlprompt.data.dg import FewShotDGDataset
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class PACSFS(FewShotDGDataset):
    """PACS: 7 classes (dog, elephant, giraffe, guitar, horse, house, person), 4 domains.

    Test: all of the held-out domain (its train + crossval lists); val: the sources' crossval lists.
    Labels in the split files are 1-based; class names are the folder names.
    """

    dataset_dir = "pacs"
    domains = ["art_painting", "cartoon", "photo", "sketch"]
    val_split = "crossval"
    test_split = "all"
    # Listed in the split files but unreadable; Dassl skips it.
    error_paths = ["sketch/dog/n02103406_4068-1.png"]
    layout = """\
pacs/
    images/<domain>/<class>/<file>     domains art_painting, cartoon, photo, sketch; classes dog, elephant,
                                       giraffe, guitar, horse, house, person
    splits/<domain>_train_kfold.txt    "<domain>/<class>/<file> <label 1..7>" per line
    splits/<domain>_crossval_kfold.txt (and <domain>_test_kfold.txt, unused)
"""

    def read_data(self, domains, split):
        image_dir = self.require(os.path.join(self.dataset_dir, "images"), "image folder")
        parts = ["train", "crossval"] if split == "all" else [split]
        entries, sources = [], []
        for domain, name in enumerate(domains):
            for part in parts:
                split_file = os.path.join(self.dataset_dir, "splits", f"{name}_{part}_kfold.txt")
                sources.append(split_file)
                entries.extend((os.path.join(image_dir, impath), label - 1, domain, impath.split("/")[-2])
                               for impath, label in self.read_image_list(split_file) if impath not in self.error_paths)
        return self.datums(entries, " and ".join(sources))
