"""EuroSAT (Helber et al., 2019) as CoOp reads it: the 10 RGB classes, folder names turned into
descriptive class names (AnnualCrop -> "Annual Crop Land", ...), split from split_zhou_EuroSAT.json.
Without the split file: per class 50/20/30."""
from vlprompt.data import BenchmarkDataset, read_and_split_data
from vlprompt.engine import DATASET_REGISTRY

NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(BenchmarkDataset):
    dataset_dir = "eurosat"
    image_folder = "2750"
    split_file = "split_zhou_EuroSAT.json"
    layout = """\
eurosat/
    2750/                      one folder per class (AnnualCrop/, Forest/, ..., SeaLake/)
    split_zhou_EuroSAT.json    CoOp's split
"""

    def make_split(self):
        return read_and_split_data(self.image_dir, new_cnames=NEW_CNAMES)
