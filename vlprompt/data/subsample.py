"""Base-to-new class split (CoCoOp's protocol).

Labels of the first list (train), sorted; the first ceil(n/2) are "base", the rest "new"; the selected
classes are relabelled 0..m-1 in every list. Applied after the few-shot cache, so one cache serves
all/base/new.
"""
import math

from vlprompt.engine import Datum

from ..validation import SUBSAMPLE_CHOICES, check_choice


def base_new_labels(labels, subsample):
    labels = sorted(set(labels))
    m = math.ceil(len(labels) / 2)
    return labels[:m] if subsample == "base" else labels[m:]


def subsample_classes(*datasets, subsample="all"):
    check_choice("DATASET.SUBSAMPLE_CLASSES", subsample, SUBSAMPLE_CHOICES)
    if subsample == "all":
        return datasets
    selected = base_new_labels([item.label for item in datasets[0]], subsample)
    relabeler = {y: y_new for y_new, y in enumerate(selected)}
    print(f"SUBSAMPLE {subsample.upper()} CLASSES!")
    output = []
    for dataset in datasets:
        if dataset is None:
            output.append(None)
            continue
        output.append([Datum(impath=item.impath, label=relabeler[item.label], classname=item.classname)
                       for item in dataset if item.label in relabeler])
    return output
