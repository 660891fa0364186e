#!/usr/bin/env python3
# TensorBoard as the outside reader of trainer/tensorboard_writer.h (run with the tests' venv).
"""Prints every scalar in a TensorBoard log folder as read by TensorBoard itself.

Usage: read_tensorboard_events.py DIR
One line per point, sorted by tag then step: "TAG STEP VALUE" (value with repr precision).
The C++ test (tests/trainer/test_tensorboard.cc) compares them with what it wrote.
"""
import sys

from tensorboard.backend.event_processing import event_accumulator


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: read_tensorboard_events.py DIR")
    # size_guidance 0: keep every point (the default samples scalars down to 10000).
    acc = event_accumulator.EventAccumulator(
        sys.argv[1], size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    for tag in sorted(acc.Tags()["scalars"]):
        for event in sorted(acc.Scalars(tag), key=lambda e: e.step):
            print(tag, event.step, repr(event.value))


if __name__ == "__main__":
    main()
