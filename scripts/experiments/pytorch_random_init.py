"""PyTorch's own behaviour on the random-init column of pretrained_vs_random.sh:
EfficientNet-Lite0 (PyPI efficientnet-lite-pytorch) from random initialisation,
the same files, input (112x112, (x-127)/128), SGD (momentum 0.9, weight decay
1e-4, batch 32) and schedule ([0.01]*7 + [0.001]*7 + [0.0001]). Prints per epoch:
epoch, last batch loss, eval-mode test accuracy, mean running variance of the
head's batch norm.

Usage (after scripts/experiments/pretrained_vs_random.sh has written the data):
    .venv/bin/python scripts/experiments/pytorch_random_init.py 15
"""
import torch, torchvision, warnings, sys
warnings.filterwarnings("ignore")
from efficientnet_lite_pytorch import EfficientNet
torch.manual_seed(0)
d = "outputs/experiments/pretrained_vs_random/fashion-distinct"
tf = torchvision.transforms.Compose([torchvision.transforms.Grayscale(3), torchvision.transforms.Resize((112, 112)), torchvision.transforms.PILToTensor(), torchvision.transforms.Lambda(lambda x: (x.float() - 127) / 128)])
tr = torchvision.datasets.ImageFolder(f"{d}/train", tf); te = torchvision.datasets.ImageFolder(f"{d}/test", tf)
dl = torch.utils.data.DataLoader(tr, batch_size=32, shuffle=True); tl = torch.utils.data.DataLoader(te, batch_size=64)
m = EfficientNet.from_name("efficientnet-lite0", num_classes=4)
print("bn weight init", m._bn1.weight.mean().item())
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
LR = [0.01]*7 + [0.001]*7 + [0.0001]
for ep in range(int(sys.argv[1])):
    for g in opt.param_groups: g["lr"] = LR[ep]
    m.train()
    for x, y in dl:
        opt.zero_grad(); loss = torch.nn.functional.cross_entropy(m(x), y); loss.backward(); opt.step()
    m.eval(); c = 0
    with torch.no_grad():
        for x, y in tl: c += (m(x).argmax(1) == y).sum().item()
    print(ep + 1, round(loss.item(), 3), c / len(te), "running_var head", round(m._bn1.running_var.mean().item(), 3), flush=True)
