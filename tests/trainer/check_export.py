"""The outside half of tests/trainer/test_export.cc: runs an exported model in onnxruntime or
PyTorch on the inputs the C++ test fed our model and compares the logits.

  check_export.py onnx MODEL.onnx INPUTS.f32 LOGITS.f32 N C H W CLASSES
      onnx.checker.check_model, then onnxruntime on the whole batch and on the first item alone
      (the batch dimension is dynamic)
  check_export.py torchvision MODEL.safetensors INPUTS.f32 LOGITS.f32 N C H W CLASSES
      torchvision.models.alexnet(num_classes=CLASSES).load_state_dict(safetensors load_file)
  check_export.py state_dict MODEL.safetensors
      every tensor loads; batch norm's num_batches_tracked are int64 scalars, the rest float32
  check_export.py resave MODEL.safetensors OUT [halves]
      the state_dict saved again by safetensors.torch.save_file, without our metadata, as
      OUT.plain.safetensors; with "halves" also as F16 and BF16 (OUT.f16, OUT.bf16) and those
      values widened back to float32 (OUT.f16-f32, OUT.bf16-f32), each .safetensors

Inputs and logits are raw float32, NCHW and [N, CLASSES]. Exit status 0 when every logit is
within 1e-4 of ours relative to the largest (the tests' relative_error), 1 otherwise.
"""
import sys

import numpy as np

TOLERANCE = 1e-4


def relative_error(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b)) / max(np.max(np.abs(b)), 1e-30))


def load(argv):
    n, c, h, w, classes = (int(v) for v in argv[4:9])
    x = np.fromfile(argv[2], dtype=np.float32).reshape(n, c, h, w)
    ours = np.fromfile(argv[3], dtype=np.float32).reshape(n, classes)
    return x, ours, classes


def check_onnx(argv):
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(argv[1]))
    x, ours, _ = load(argv)
    session = ort.InferenceSession(argv[1], providers=["CPUExecutionProvider"])
    theirs = session.run(["logits"], {"input": x})[0]
    one = session.run(["logits"], {"input": x[:1]})[0]
    err = max(relative_error(theirs, ours), relative_error(one, ours[:1]))
    print(f"onnxruntime vs ours: relative error {err:.3g}")
    return err <= TOLERANCE


def check_torchvision(argv):
    import torch
    import torchvision
    from safetensors.torch import load_file

    x, ours, classes = load(argv)
    model = torchvision.models.alexnet(num_classes=classes)
    model.load_state_dict(load_file(argv[1]))  # strict: every key, every shape
    model.eval()
    with torch.no_grad():
        theirs = model(torch.from_numpy(x)).numpy()
    err = relative_error(theirs, ours)
    print(f"torchvision vs ours: relative error {err:.3g}")
    return err <= TOLERANCE


def check_state_dict(argv):
    import torch
    from safetensors.torch import load_file

    ok = True
    for name, t in load_file(argv[1]).items():
        want = torch.int64 if name.endswith("num_batches_tracked") else torch.float32
        if t.dtype != want or (want == torch.int64 and t.dim() != 0):
            print(f"{name}: {t.dtype} {tuple(t.shape)}, want {want}")
            ok = False
    return ok


def resave(argv):
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(argv[1])
    out = argv[2]
    save_file(tensors, out + ".plain.safetensors")
    if len(argv) > 3 and argv[3] == "halves":
        for name, dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
            low = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
            save_file(low, f"{out}.{name}.safetensors")
            wide = {k: v.float() if v.is_floating_point() else v for k, v in low.items()}
            save_file(wide, f"{out}.{name}-f32.safetensors")
    return True


if __name__ == "__main__":
    check = {"onnx": check_onnx, "torchvision": check_torchvision,
             "state_dict": check_state_dict, "resave": resave}[sys.argv[1]]
    sys.exit(0 if check(sys.argv[1:]) else 1)
