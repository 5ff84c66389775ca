"""Tiny datasets in the exact on-disk layouts the readers expect, with real JPEG files.

Each class gets its own colour (plus per-image noise), so a model can learn to tell classes apart:
the "easy synthetic task" the learning tests and the offline demo train on.

Every generator writes one dataset under a data root and returns a `FakeDataset`: the class names in
label order and the exact (image path, label, class name) lists the reader must produce, stated here
from the reference facts (class-name rules, label order, split files) independently of the readers.
Names are chosen to exercise each class-name rule (Caltech's ignored/renamed folders, Pets' names from
image names, Cars' year, SUN397's reversed segments, UCF101's CamelCase, ...).

Modules: `images` (coloured JPEGs, the fixtures' Caltech101), `common` (FakeDataset, the registry, split
helpers), `benchmark` (the 11 base-to-new datasets), `imagenet` (ImageNet and its variants), `custom`.

`GENERATORS` maps registry names to generators (`make_dataset(name, root)`); register more with
`@register_generator("Name")`, so registry-parametrised tests cover a new dataset.
"""
from .common import GENERATORS, FakeDataset, make_all, make_dataset, register_generator
from .images import CALTECH_FOLDERS, class_colour, make_caltech101, write_jpeg
# the generators register themselves on import, in this order (base-to-new, ImageNet family, custom)
from .benchmark import (fake_caltech101, fake_dtd, fake_eurosat, fake_fgvc_aircraft, fake_food101,
                        fake_oxford_flowers, fake_oxford_pets, fake_stanford_cars, fake_sun397, fake_ucf101)
from .imagenet import (fake_imagenet, fake_imagenet_a, fake_imagenet_r, fake_imagenet_sketch, fake_imagenetv2)
from .custom import CUSTOM_CLASSES, fake_custom

__all__ = ["GENERATORS", "FakeDataset", "make_all", "make_dataset", "register_generator", "CALTECH_FOLDERS",
           "class_colour", "make_caltech101", "write_jpeg", "CUSTOM_CLASSES", "fake_caltech101", "fake_dtd",
           "fake_eurosat", "fake_fgvc_aircraft", "fake_food101", "fake_oxford_flowers", "fake_oxford_pets",
           "fake_stanford_cars", "fake_sun397", "fake_ucf101", "fake_imagenet", "fake_imagenet_a", "fake_imagenet_r",
           "fake_imagenet_sketch", "fake_imagenetv2", "fake_custom"]
