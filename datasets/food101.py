"""Food-101 (Bossard et al., 2014) as CoOp reads it: 101 dishes named after their folders ("apple_pie"),
split from split_zhou_Food101.json (the dataset's meta/ files are not used). Without the split file:
per class 50% train / 20% val / 30% test (CoOp's DTD routine)."""
from vlprompt.data import BenchmarkDataset, read_and_split_data
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class Food101(BenchmarkDataset):
    dataset_dir = "food-101"
    image_folder = "images"
    split_file = "split_zhou_Food101.json"
    layout = """\
food-101/
    images/                    one folder per dish (apple_pie/, baby_back_ribs/, ...)
    split_zhou_Food101.json    CoOp's split
"""

    def make_split(self):
        return read_and_split_data(self.image_dir)
