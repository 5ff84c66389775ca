"""Write the offline demo's inputs: a tiny random-weight CLIP file and a generated Caltech101 tree.

    python -m vlprompt.testing.demo_assets WORKDIR   ->  WORKDIR/tiny-clip.pt, WORKDIR/data/caltech-101/
"""
import os
import sys

from .fake_data import make_caltech101
from .tiny_clip import save_tiny_clip


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m vlprompt.testing.demo_assets WORKDIR", file=sys.stderr)
        return 2
    work = os.path.abspath(argv[0])
    os.makedirs(os.path.join(work, "data"), exist_ok=True)
    clip_path = os.path.join(work, "tiny-clip.pt")
    if not os.path.exists(clip_path):
        save_tiny_clip(clip_path)
    if not os.path.isdir(os.path.join(work, "data", "caltech-101")):
        make_caltech101(os.path.join(work, "data"))
    print(f"tiny CLIP: {clip_path}\ndata root: {os.path.join(work, 'data')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
