# Prints torchvision AlexNet's state_dict as "name dim dim ..." lines, in order, for the C++ test.
# Usage: torchvision_state_dict.py NUM_CLASSES [--modules SIZE]
# With --modules, prints instead "name ClassName dim ..." for every leaf module in forward order,
# with its output shape for one SIZE x SIZE RGB image (batch dimension dropped).
import sys

import torch
import torchvision

model = torchvision.models.alexnet(num_classes=int(sys.argv[1]))
if len(sys.argv) > 2 and sys.argv[2] == "--modules":
    size = int(sys.argv[3])
    lines = []

    def record(name):
        return lambda module, inputs, output: lines.append(
            " ".join([name, type(module).__name__, *map(str, output.shape[1:])]))

    for name, module in model.named_modules():
        if not list(module.children()):
            module.register_forward_hook(record(name))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    print("\n".join(lines))
else:
    for name, tensor in model.state_dict().items():
        print(name, *tensor.shape)
