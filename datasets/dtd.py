"""Describable Textures (Cimpoi et al., 2014) as CoOp reads it: 47 textures named after their folders,
split from split_zhou_DescribableTextures.json. Without the split file: per class 50/20/30.

`DescribableTextures.read_and_split_data(image_dir, p_trn=0.5, p_val=0.2, ignored=[], new_cnames=None)`
is the original's public static helper, which its other readers call (as `DTD`), so this file can
replace theirs."""
from vlprompt.data import BenchmarkDataset, read_and_split_data
from vlprompt.engine import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class DescribableTextures(BenchmarkDataset):
    dataset_dir = "dtd"
    image_folder = "images"
    split_file = "split_zhou_DescribableTextures.json"
    layout = """\
dtd/
    images/                                 one folder per texture (banded/, blotchy/, ...)
    split_zhou_DescribableTextures.json     CoOp's split
"""
    read_and_split_data = staticmethod(read_and_split_data)  # the original's helper, same signature

    def make_split(self):
        return self.read_and_split_data(self.image_dir)
