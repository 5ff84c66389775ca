"""Caltech101 (Fei-Fei et al., 2004) as CoOp reads it: 100 classes (BACKGROUND_Google and Faces_easy
are left out), four folder names turned into class names (airplanes -> airplane, Faces -> face,
Leopards -> leopard, Motorbikes -> motorbike), split from split_zhou_Caltech101.json."""
from vlprompt.data import BenchmarkDataset, read_and_split_data
from vlprompt.engine import DATASET_REGISTRY

IGNORED = ["BACKGROUND_Google", "Faces_easy"]
NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class Caltech101(BenchmarkDataset):
    dataset_dir = "caltech-101"
    image_folder = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    layout = """\
caltech-101/
    101_ObjectCategories/      one folder per class (accordion/, airplanes/, ...; image_0001.jpg, ...)
    split_zhou_Caltech101.json CoOp's split (made from the folders, 50/20/30 per class, if absent)
"""

    def make_split(self):
        return read_and_split_data(self.image_dir, ignored=IGNORED, new_cnames=NEW_CNAMES)
