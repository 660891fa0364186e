#!/usr/bin/python3
"""Unit tests of launch/scaling-model: the cost formulas, the bucket plan, the timeline.
Usage: scaling_model_test.py [PATH_TO_scaling-model]"""
import importlib.machinery
import importlib.util
import os
import random
import sys
import unittest

PATH = (sys.argv.pop(1) if len(sys.argv) > 1 else
        os.path.join(os.path.dirname(__file__), "..", "..", "launch", "scaling-model"))
loader = importlib.machinery.SourceFileLoader("scaling_model", PATH)
spec = importlib.util.spec_from_loader("scaling_model", loader)
sm = importlib.util.module_from_spec(spec)
loader.exec_module(sm)


def torchvision_times(batch=128):
    return sm.times_from_flops(sm.TORCHVISION, batch, "h100")


class Formulas(unittest.TestCase):
    def test_ring_known_numbers(self):
        # 1 GB over 4 ranks at 1 GB/s: 2 * 3/4 * 1 s, plus 2 * 3 latencies of 1 us
        self.assertAlmostEqual(sm.ring_time(1e9, 4, 1e9, 1e-6), 1.5 + 6e-6, places=12)
        # 244.4 MB on 8 x H100 at 370 GB/s busbw: about 1.2 ms (REFERENCES.md's figure)
        self.assertAlmostEqual(sm.ring_time(244.4e6, 8, 370e9, 0), 1.156e-3, places=5)
        self.assertEqual(sm.ring_time(1e9, 1, 1e9, 1e-6), 0.0)

    def test_tree_and_hierarchical(self):
        self.assertAlmostEqual(sm.tree_time(1e9, 8, 1e9, 1e-6), 2.0 + 6e-6, places=12)
        fast = dict(bw=100.0, alpha=0.0, note="")
        slow = dict(bw=10.0, alpha=0.0, note="")
        c = sm.Cluster(fast, slow, per_node=2)
        # inside one node every algorithm uses the node's links
        self.assertAlmostEqual(c.allreduce(1000, 2, "hierarchical"), 1000 / 100)
        self.assertAlmostEqual(c.allreduce(1000, 2, "ring"), 1000 / 100)
        # 2 nodes of 2: in-node all-reduce (n/100) + the half shard between nodes (500/10)
        self.assertAlmostEqual(c.allreduce(1000, 4, "hierarchical"), 10 + 50)
        # a flat ring crosses the slow link: 2 * 3/4 * 1000 / 10
        self.assertAlmostEqual(c.allreduce(1000, 4, "ring"), 150)
        # one NIC shared by a node's 2 GPUs halves the per-GPU bandwidth between nodes
        self.assertAlmostEqual(sm.Cluster(fast, slow, 2, nics=1).allreduce(1000, 4, "ring"), 300)

    def test_reference_anchor_64_gpus(self):
        # REFERENCES.md: about 10 ms across 64 GPUs with one NDR NIC per node (5 ms in bf16)
        c = sm.Cluster("nvlink-h100", "ndr-infiniband", 8, nics=1)
        fp32 = c.allreduce(244.4e6, 64, "hierarchical")
        self.assertTrue(8e-3 < fp32 < 12e-3, fp32)
        self.assertTrue(4e-3 < c.allreduce(122.2e6, 64, "hierarchical") < 6e-3)


class Buckets(unittest.TestCase):
    def test_plan_covers_all_parameters(self):
        for mb in (0.001, 1, 25, 100, 1e6):
            buckets = sm.plan_buckets(sm.TORCHVISION, mb)
            self.assertEqual(sum(b for b, _ in buckets), sum(p for _, p, _ in sm.TORCHVISION))
            names = [n for _, ns in buckets for n in ns]
            self.assertEqual(sorted(names), sorted(n for n, p, _ in sm.TORCHVISION if p))
            self.assertEqual(len(names), len(set(names)))
            # last layer first, and every bucket but the last holds at least bucket_mb
            self.assertEqual(names[0], "classifier.6")
            for size, _ in buckets[:-1]:
                self.assertGreaterEqual(size, mb * 1e6 / 4)

    def test_torchvision_25mb(self):
        # plan_buckets' rule at 6.25 M floats: [fc8, fc7], [fc6], [the five convolutions]
        buckets = sm.plan_buckets(sm.TORCHVISION, 25)
        self.assertEqual([ns for _, ns in buckets],
                         [["classifier.6", "classifier.4"], ["classifier.1"],
                          ["features.10", "features.8", "features.6", "features.3", "features.0"]])

    def test_summary_parse(self):
        text = ("features.0 (Conv2d)              [64, 55, 55]               23,296          0"
                "          140,553,600\nfeatures.1 (ReLU)                [64, 55, 55]          "
                "          0          0\n")
        self.assertEqual(sm.parse_summary(text),
                         [("features.0", 23296, 140553600), ("features.1", 0, 0)])


class Timeline(unittest.TestCase):
    def setUp(self):
        self.buckets = sm.plan_buckets(sm.TORCHVISION, 25)
        self.clusters = [sm.Cluster("nvlink-h100", net) for net in sm.NETWORKS] + \
            [sm.Cluster("nvlink-h100", "ndr-infiniband", nics=1)]

    def test_overlap_never_slower(self):
        rng = random.Random(1)
        times = [torchvision_times(), torchvision_times(8)]
        for _ in range(20):  # random per-layer times, too
            t = torchvision_times()
            t["backward"] = [(n, rng.uniform(0, 5e-3)) for n, _ in t["backward"]]
            t["forward"] = rng.uniform(0, 5e-3)
            t["optimizer"] = rng.uniform(0, 2e-3)
            times.append(t)
        for t in times:
            for c in self.clusters:
                for p in (1, 2, 8, 9, 64, 1024):
                    for algorithm in sm.ALGORITHMS:
                        for wire in (4, 2):
                            no = sm.step_time(t, self.buckets, p, c, algorithm, False, wire)
                            yes = sm.step_time(t, self.buckets, p, c, algorithm, True, wire)
                            self.assertLessEqual(yes["step"], no["step"] + 1e-12)
                            # and never faster than compute alone
                            self.assertGreaterEqual(yes["step"], yes["compute"] - 1e-12)

    def test_efficiency_one_at_one_gpu(self):
        for c in self.clusters:
            rows = sm.predict_rows(torchvision_times(), self.buckets, c, [1, 8], 128)
            for r in rows:
                if r["gpus"] == 1:
                    self.assertAlmostEqual(r["efficiency"], 1.0)
                    self.assertEqual(r["allreduce_ms"], 0.0)
                self.assertLessEqual(r["efficiency"], 1.0 + 1e-12)

    def test_16_bit_halves_bytes(self):
        c = sm.Cluster("nvlink-h100", "ndr-infiniband")
        t = torchvision_times()
        a = sm.step_time(t, self.buckets, 64, c, "ring", False, 4)["comm"]
        b = sm.step_time(t, self.buckets, 64, c, "ring", False, 2)["comm"]
        alpha = 3 * 2 * 63 * sm.NETWORKS["ndr-infiniband"]["alpha"]  # latency stays
        self.assertAlmostEqual(b - alpha, (a - alpha) / 2, places=9)

    def test_trace_parse(self):
        trace = {"traceEvents": [
            {"name": "classifier.6", "cat": "backward", "ph": "X", "pid": 0, "dur": 300.0},
            {"name": "features.0", "cat": "backward", "ph": "X", "pid": 0, "dur": 100.0},
            {"name": "features.0", "cat": "forward", "ph": "X", "pid": 0, "dur": 50.0},
            {"name": "optimizer and waits", "cat": "step", "ph": "X", "pid": 0, "dur": 20.0},
            {"name": "bucket 0 (1000 floats)", "cat": "all-reduce", "ph": "X", "pid": 0,
             "dur": 7.0}]}
        t = sm.times_from_trace(trace)
        self.assertEqual(t["backward"], [("features.0", 1e-4), ("classifier.6", 3e-4)])
        self.assertAlmostEqual(t["forward"], 5e-5)
        self.assertAlmostEqual(t["optimizer"], 2e-5)
        self.assertEqual(t["reduces"], [(1000, 7e-6)])


if __name__ == "__main__":
    unittest.main(verbosity=1)
