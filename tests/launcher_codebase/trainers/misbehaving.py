"""Trainers that misbehave on purpose, for the launcher tests (tests/test_local_launcher.py,
tests/test_slurm_launcher.py): the repository's CoOp, with a fault at the first training batch.

This folder is a codebase of its own (`--repo tests/launcher_codebase`, or `repo=` of the launchers): its
trainers/ holds only this module, which loads the repository's codebase first (so that CoOp and the
datasets are registered) and registers its subclasses next to them. Nothing in the library knows about it.

    RaisingCoOp      raises a RuntimeError (not a user error: its worker is replaced)
    SegfaultingCoOp  kills its own process with SIGSEGV (a crash of the worker)
    HangingCoOp      never returns (a hung run)
    PausingCoOp      at the first batch of its second epoch, when a FIFO "<its output dir>.pause" exists, writes
                     "<that FIFO>.reached" and blocks opening it: held mid-training, deterministically, until a
                     signal (Slurm's preemption notice) or a writer releases it
"""
import os
import signal
import threading

from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.plugins import load_codebase

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

load_codebase(REPO_ROOT)
CoOp = TRAINER_REGISTRY.get("CoOp")


@TRAINER_REGISTRY.register()
class RaisingCoOp(CoOp):
    def forward_backward(self, batch):
        raise RuntimeError("RaisingCoOp: an error that is not the user's")


@TRAINER_REGISTRY.register()
class SegfaultingCoOp(CoOp):
    def forward_backward(self, batch):
        os.kill(os.getpid(), signal.SIGSEGV)


@TRAINER_REGISTRY.register()
class HangingCoOp(CoOp):
    def forward_backward(self, batch):
        print("HangingCoOp: hanging", flush=True)
        threading.Event().wait()


@TRAINER_REGISTRY.register()
class PausingCoOp(CoOp):
    def forward_backward(self, batch):
        fifo = os.path.normpath(self.output_dir) + ".pause"
        if (self.epoch, self.batch_idx) == (1, 0) and os.path.exists(fifo):
            with open(f"{fifo}.reached", "w") as f:
                f.write(f"{os.getpid()}\n")
            with open(fifo):  # blocks until a writer opens it, or a signal's handler raises
                pass
        return super().forward_backward(batch)
