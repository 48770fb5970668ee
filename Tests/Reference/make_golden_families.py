"""Golden logits from torch 1.13 + torchvision 0.14 for the families beside ResNet.

    /usr/bin/python3 Tests/Reference/make_golden_families.py

Writes Tests/Fixtures/golden/families/:
  <case>.pth, <case>.input.npy, <case>.logits.npy   for each case below, and families.json (what each case
                                                    is, its shape parameters, top-5, the versions)
  architectures.json                                the state-dict names and shapes of each full-size
                                                    builder in ARCHITECTURES

Each case is torchvision's own class where its constructor can be made small (MobileNetV2 with
width_mult), or torchvision's class with its `features` / `classifier` swapped for smaller ones of the
same structure and names (AlexNet, VGG: the hard-coded 4096-wide classifiers are 100+ MB), or the
ResNet of make_golden.py with groups and width_per_group (ResNeXt, Wide ResNet) at small widths. Seeded;
BatchNorm weights, biases and running statistics randomised so that folding is exercised; eval mode, so
dropout is the identity.

With Weights/mobilenet_v2-b0353104.pth present (scripts/fetch_mobilenet_v2.sh fetches torchvision's file),
also writes mobilenet_v2-real.logits.npy: the real ImageNet MobileNetV2 on the committed test photos
through torchvision's eval transform (Resize 256, CenterCrop 224, ToTensor, Normalize).
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import Bottleneck, conv1x1
from torchvision.models.vgg import make_layers

from make_golden import randomise_bn, top5

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "golden" / "families"
PHOTOS = ["photo_grace_hopper.jpg", "photo_Minduka_Present_Blue_Pack.png", "jpeg_rgb444.jpg"]


def randomise_linears(model, g):
    """torchvision's MobileNetV3 draws Linear weights from N(0, 0.01), which leaves logits near 1e-2; weights
    of unit gain through each layer give logits near 1, so that the top-5 means something."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.data = torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5
            m.bias.data = torch.randn(m.out_features, generator=g) * 0.05


def randomise_layer_norms(model, g):
    """LayerNorm's γ 1 and β 0, and ConvNeXt's layer scale of 1e-6 (which makes every block nearly the
    identity), replaced by random values, so that none of them is a no-op."""
    from torchvision.models.convnext import CNBlock
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.data = 1 + 0.2 * (torch.rand(m.weight.shape, generator=g) * 2 - 1)
            m.bias.data = 0.1 * (torch.rand(m.bias.shape, generator=g) * 2 - 1)
        if isinstance(m, CNBlock):
            m.layer_scale.data = 0.1 + 0.4 * torch.rand(m.layer_scale.shape, generator=g)


def he_normal_convs(model, seed):
    """SqueezeNet's kaiming_uniform_ (gain 1, no BatchNorm) and GoogLeNet's trunc_normal_(0.01) shrink the
    values layer by layer: the logits come out near the biases, the same for every image (SqueezeNet's
    many exactly 0 after its last ReLU). He-normal weights keep the images apart."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2 / fan_in) ** 0.5


def randomise_biases(model, g):
    """torchvision initialises conv biases to zero; random ones check that they are added."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            m.bias.data = torch.randn(m.out_channels, generator=g) * 0.05


class GroupedResNet(nn.Module):
    """make_golden.py's SmallResNet with torchvision's groups and width_per_group (ResNeXt, Wide ResNet):
    Bottleneck blocks, torchvision's _make_layer rule and names."""

    def __init__(self, layers, widths, stem, groups, width_per_group, classes):
        super().__init__()
        self.inplanes, self.groups, self.base_width = stem, groups, width_per_group
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(widths[0], layers[0], 1)
        self.layer2 = self._make_layer(widths[1], layers[1], 2)
        self.layer3 = self._make_layer(widths[2], layers[2], 2)
        self.layer4 = self._make_layer(widths[3], layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * Bottleneck.expansion, classes)

    def _make_layer(self, planes, blocks, stride):
        e = Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != planes * e:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * e, stride), nn.BatchNorm2d(planes * e))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, self.groups, self.base_width)]
        self.inplanes = planes * e
        layers += [Bottleneck(self.inplanes, planes, groups=self.groups, base_width=self.base_width)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def small_classifier(features, hidden, classes, alexnet):
    if alexnet:  # Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear
        return nn.Sequential(nn.Dropout(0.5), nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
                             nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, classes))
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(hidden, hidden),
                         nn.ReLU(True), nn.Dropout(0.5), nn.Linear(hidden, classes))


def build(case):
    kind = case["family"]
    if kind == "mobilenet_v2":
        return torchvision.models.mobilenet_v2(num_classes=case["classes"], width_mult=case["width_mult"])
    if kind == "efficientnet":
        from torchvision.models import efficientnet as ef
        from functools import partial
        settings = [(ef.FusedMBConvConfig(*st[1:]) if st[0] == "fused" else
                     ef.MBConvConfig(*st[1:], width_mult=case["width_mult"], depth_mult=case["depth_mult"]))
                    for st in case["stages"]]
        return ef.EfficientNet(settings, case["dropout"], num_classes=case["classes"],
                               last_channel=case["last_channel"],
                               norm_layer=partial(nn.BatchNorm2d, eps=case["bn_eps"], momentum=case["bn_momentum"]))
    if kind == "googlenet":
        # torchvision's GoogLeNet as its pretrained builder makes it (transform_input on), its modules swapped
        # for narrower ones of the same structure and names; aux1 and aux2 small stand-ins under
        # InceptionAux's names (conv, fc1, fc2), unused in eval mode, saved so that loading drops them.
        from torchvision.models.googlenet import GoogLeNet, BasicConv2d, Inception
        model = GoogLeNet(num_classes=case["classes"], aux_logits=True, transform_input=True, init_weights=True)
        c1, c2, c3 = case["stem"]
        model.conv1 = BasicConv2d(3, c1, kernel_size=7, stride=2, padding=3)
        model.conv2 = BasicConv2d(c1, c2, kernel_size=1)
        model.conv3 = BasicConv2d(c2, c3, kernel_size=3, padding=1)
        width, widths = c3, {}
        for name, w in case["inceptions"]:
            setattr(model, name, Inception(width, *w))
            width = w[0] + w[2] + w[4] + w[5]
            widths[name] = width
        for aux, source in [("aux1", "inception4a"), ("aux2", "inception4d")]:
            m = nn.Module()
            m.conv = BasicConv2d(widths[source], 8, kernel_size=1)
            m.fc1 = nn.Linear(8 * 16, 16)
            m.fc2 = nn.Linear(16, case["classes"])
            setattr(model, aux, m)
        model.fc = nn.Linear(width, case["classes"])
        he_normal_convs(model, case["weight_seed"])
        return model
    if kind == "inception_v3":
        # torchvision's Inception3 as its pretrained builder makes it (transform_input on, AuxLogits kept in
        # the file), every BasicConv2d and the Linear layers replaced by ones of the same kernel, stride
        # and padding with every width divided by "divisor" (the input's 3 channels kept); torchvision's
        # own module classes and forward.
        from torchvision.models.inception import Inception3, BasicConv2d
        d = case["divisor"]
        model = Inception3(num_classes=case["classes"], aux_logits=True, transform_input=True, init_weights=True)
        for name, m in list(model.named_modules()):
            if isinstance(m, BasicConv2d):
                c = m.conv
                small = BasicConv2d(c.in_channels if c.in_channels == 3 else c.in_channels // d, c.out_channels // d,
                                    kernel_size=c.kernel_size, stride=c.stride, padding=c.padding)
                parent, _, attr = name.rpartition(".")
                setattr(model.get_submodule(parent) if parent else model, attr, small)
        model.AuxLogits.fc = nn.Linear(768 // d, case["classes"])
        model.fc = nn.Linear(2048 // d, case["classes"])
        he_normal_convs(model, case["weight_seed"])
        return model
    if kind == "squeezenet":
        from torchvision.models.squeezenet import SqueezeNet, Fire
        model = SqueezeNet(case["version"], num_classes=case["classes"])
        stem, k = case["stem"]
        layers = [nn.Conv2d(3, stem, kernel_size=k, stride=2), nn.ReLU(inplace=True)]
        width = stem
        for fire in case["body"]:
            if fire is None:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
            else:
                layers.append(Fire(width, *fire))
                width = fire[1] + fire[2]
        model.features = nn.Sequential(*layers)
        model.classifier[1] = nn.Conv2d(width, case["classes"], kernel_size=1)
        he_normal_convs(model, case["weight_seed"])
        return model
    if kind == "convnext":
        from torchvision.models.convnext import ConvNeXt, CNBlockConfig
        return ConvNeXt([CNBlockConfig(*st) for st in case["stages"]], case["stochastic_depth_prob"],
                        num_classes=case["classes"])
    if kind == "densenet":
        from torchvision.models.densenet import DenseNet
        return DenseNet(case["growth_rate"], tuple(case["blocks"]), case["initial_features"], case["bn_size"],
                        num_classes=case["classes"])
    if kind == "shufflenet":
        from torchvision.models.shufflenetv2 import ShuffleNetV2
        return ShuffleNetV2(case["repeats"], case["widths"], num_classes=case["classes"])
    if kind == "regnet":
        from torchvision.models import regnet as rn
        params = rn.BlockParams.from_init_params(depth=case["depth"], w_0=case["w_0"], w_a=case["w_a"], w_m=case["w_m"],
                                                 group_width=case["group_width"], se_ratio=case["se_ratio"])
        return rn.RegNet(params, num_classes=case["classes"], stem_width=case["stem_width"])
    if kind == "mnasnet":
        from torchvision.models import mnasnet as mn
        model = mn.MNASNet(case["alpha"], num_classes=case["classes"])
        if case.get("version_one_stem"):
            # torchvision's own patch for a version-1 checkpoint (MNASNet._load_from_state_dict).
            d = mn._get_depths(case["alpha"])
            stem = [nn.Conv2d(3, 32, 3, padding=1, stride=2, bias=False), nn.BatchNorm2d(32, momentum=mn._BN_MOMENTUM),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(32, 32, 3, padding=1, stride=1, groups=32, bias=False),
                    nn.BatchNorm2d(32, momentum=mn._BN_MOMENTUM), nn.ReLU(inplace=True),
                    nn.Conv2d(32, 16, 1, padding=0, stride=1, bias=False), nn.BatchNorm2d(16, momentum=mn._BN_MOMENTUM),
                    mn._stack(16, d[2], 3, 2, 3, 3, mn._BN_MOMENTUM)]
            for i, layer in enumerate(stem):
                model.layers[i] = layer
        return model
    if kind == "mobilenet_v3":
        return getattr(torchvision.models, case["arch"])(num_classes=case["classes"], width_mult=case["width_mult"])
    if kind == "vgg":
        cfg = ["M" if v == 0 else v for v in case["layers"]]
        model = torchvision.models.vgg.VGG(make_layers(cfg, batch_norm=case["batch_norm"]), num_classes=case["classes"])
        last = [v for v in case["layers"] if v][-1]
        model.classifier = small_classifier(last * 49, case["hidden"], case["classes"], alexnet=False)
        return model
    if kind == "alexnet":
        model = torchvision.models.alexnet(num_classes=case["classes"])
        w = case["widths"]
        model.features = nn.Sequential(
            nn.Conv2d(3, w[0], kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(w[0], w[1], kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(w[1], w[2], kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w[2], w[3], kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w[3], w[4], kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2))
        model.classifier = small_classifier(w[4] * 36, case["hidden"], case["classes"], alexnet=True)
        return model
    if kind == "resnet":
        return GroupedResNet(case["layers"], case["widths"], case["stem"], case["groups"], case["width_per_group"],
                             case["classes"])
    raise ValueError(kind)


CASES = {
    "mobilenet_v2_small": {"family": "mobilenet_v2", "classes": 10, "width_mult": 0.25, "input_shape": [2, 3, 64, 64]},
    "vgg_small": {"family": "vgg", "layers": [8, 0, 16, 0, 24, 24, 0, 32, 32, 0, 32, 32, 0], "batch_norm": False,
                  "hidden": 64, "classes": 10, "input_shape": [2, 3, 64, 64]},
    "vgg_bn_small": {"family": "vgg", "layers": [8, 0, 16, 0, 24, 24, 0, 32, 32, 0, 32, 32, 0], "batch_norm": True,
                     "hidden": 64, "classes": 10, "input_shape": [2, 3, 64, 80]},
    # 224×224 would make the features 7×7 and skip the adaptive pool's averaging; 64×64 makes it 2×2 → 7×7.
    "alexnet_small": {"family": "alexnet", "widths": [16, 32, 48, 32, 32], "hidden": 64, "classes": 10,
                      "input_shape": [2, 3, 96, 96]},
    "resnext_small": {"family": "resnet", "layers": [1, 2, 1, 1], "widths": [8, 16, 24, 32], "stem": 8, "groups": 4,
                      "width_per_group": 8, "classes": 10, "input_shape": [2, 3, 64, 48]},
    "wide_resnet_small": {"family": "resnet", "layers": [1, 1, 1, 1], "widths": [4, 8, 8, 8], "stem": 8, "groups": 1,
                          "width_per_group": 128, "classes": 10, "input_shape": [2, 3, 48, 48]},
    # Hardswish, Hardsigmoid, squeeze-excitation, BatchNorm eps 1e-3; 64×64 leaves 2×2 at the last stage.
    "mobilenet_v3_large_small": {"family": "mobilenet_v3", "arch": "mobilenet_v3_large", "classes": 10,
                                 "width_mult": 0.5, "input_shape": [2, 3, 64, 64], "randomise_linears": True},
    "mobilenet_v3_small_small": {"family": "mobilenet_v3", "arch": "mobilenet_v3_small", "classes": 10,
                                 "width_mult": 0.75, "input_shape": [2, 3, 72, 56], "randomise_linears": True},
    # EfficientNet's MBConv (SiLU, squeeze-excitation with sigmoid) at width 0.25, half depth: torchvision's
    # B0 stages through EfficientNet(…); stochastic depth is the identity in eval mode.
    "efficientnet_b0_small": {"family": "efficientnet", "classes": 10, "width_mult": 0.25, "depth_mult": 0.5,
                              "stages": [["mb", 1, 3, 1, 32, 16, 1], ["mb", 6, 3, 2, 16, 24, 2],
                                         ["mb", 6, 5, 2, 24, 40, 2], ["mb", 6, 3, 2, 40, 80, 3],
                                         ["mb", 6, 5, 1, 80, 112, 3], ["mb", 6, 5, 2, 112, 192, 4],
                                         ["mb", 6, 3, 1, 192, 320, 1]],
                              "dropout": 0.2, "last_channel": None, "bn_eps": 1e-5, "bn_momentum": 0.1,
                              "input_shape": [2, 3, 64, 64], "randomise_linears": True},
    # EfficientNetV2's FusedMBConv (with and without its expansion) then MBConv, BatchNorm eps 1e-3.
    "efficientnet_v2_small": {"family": "efficientnet", "classes": 10, "width_mult": 1.0, "depth_mult": 1.0,
                              "stages": [["fused", 1, 3, 1, 8, 8, 2], ["fused", 4, 3, 2, 8, 16, 2],
                                         ["mb", 4, 3, 2, 16, 24, 2], ["mb", 6, 3, 1, 24, 32, 2]],
                              "dropout": 0.2, "last_channel": 64, "bn_eps": 1e-3, "bn_momentum": 0.1,
                              "input_shape": [2, 3, 48, 40], "randomise_linears": True},
    # MNASNet: ReLU inverted residuals, BatchNorm momentum 1 − 0.9997, the mean over the image.
    "mnasnet_small": {"family": "mnasnet", "alpha": 0.25, "classes": 10, "input_shape": [2, 3, 64, 56],
                      "randomise_linears": True},
    # The version-1 layout of torchvision's published mnasnet0_5 file: the stem 32 and 16 wide.
    "mnasnet_v1_stem": {"family": "mnasnet", "alpha": 0.5, "version_one_stem": True, "classes": 10,
                        "input_shape": [1, 3, 64, 64], "randomise_linears": True},
    # RegNet Y (grouped 3×3, squeeze-excitation with ReLU and sigmoid, projections) and X, small widths.
    "regnet_y_small": {"family": "regnet", "depth": 5, "w_0": 8, "w_a": 8.0, "w_m": 2.0, "group_width": 4,
                       "se_ratio": 0.25, "stem_width": 8, "classes": 10, "input_shape": [2, 3, 64, 48]},
    "regnet_x_small": {"family": "regnet", "depth": 4, "w_0": 16, "w_a": 12.0, "w_m": 2.2, "group_width": 8,
                       "se_ratio": None, "stem_width": 16, "classes": 10, "input_shape": [2, 3, 48, 48]},
    # ShuffleNetV2: channel split, concatenation and shuffle, both branch kinds.
    "shufflenet_small": {"family": "shufflenet", "repeats": [2, 3, 2], "widths": [8, 16, 32, 48, 64], "classes": 10,
                         "input_shape": [2, 3, 64, 64], "randomise_linears": True},
    # DenseNet: concatenation, BatchNorms that follow no convolution, 2×2 average pools.
    "densenet_small": {"family": "densenet", "growth_rate": 8, "blocks": [2, 3, 2, 2], "initial_features": 16,
                       "bn_size": 2, "classes": 10, "input_shape": [2, 3, 64, 64], "randomise_linears": True},
    # The same structure saved under the key names of torchvision's published files (denselayer1.norm.1.weight).
    "densenet_legacy_names": {"family": "densenet", "growth_rate": 8, "blocks": [2, 2, 2, 2], "initial_features": 16,
                              "bn_size": 2, "classes": 10, "input_shape": [1, 3, 48, 48], "randomise_linears": True,
                              "legacy_names": True},
    "convnext_small_case": {"family": "convnext", "stages": [[16, 24, 2], [24, 32, 2], [32, 48, 3], [48, None, 2]],
                            "stochastic_depth_prob": 0.1, "classes": 10, "input_shape": [2, 3, 64, 48],
                            "randomise_linears": True, "randomise_layer_norms": True},
    "squeezenet_small_case": {"family": "squeezenet", "version": "1_0", "stem": [24, 7],
                              "body": [None, [4, 16, 16], [4, 16, 16], [8, 32, 32], None, [8, 32, 32], [12, 48, 48],
                                       [12, 48, 48], [16, 64, 64], None, [16, 64, 64]],
                              "classes": 10, "input_shape": [2, 3, 67, 61], "weight_seed": 5},
    "googlenet_small_case": {"family": "googlenet", "stem": [8, 8, 24], "classes": 10, "input_shape": [2, 3, 61, 67],
                             "inceptions": [["inception3a", [8, 12, 16, 2, 4, 4]],
                                            ["inception3b", [16, 16, 24, 4, 12, 8]],
                                            ["inception4a", [24, 12, 26, 2, 6, 8]],
                                            ["inception4b", [20, 14, 28, 3, 8, 8]],
                                            ["inception4c", [16, 16, 32, 3, 8, 8]],
                                            ["inception4d", [14, 18, 36, 4, 8, 8]],
                                            ["inception4e", [32, 20, 40, 4, 16, 16]],
                                            ["inception5a", [32, 20, 40, 4, 16, 16]],
                                            ["inception5b", [48, 24, 48, 6, 16, 16]]],
                             "randomise_linears": True, "weight_seed": 6},
    "inception_v3_small_case": {"family": "inception_v3", "divisor": 8, "classes": 10, "input_shape": [2, 3, 79, 83],
                                "randomise_linears": True, "weight_seed": 7, "calibrate_bn": True},
}

# Every full-size builder whose state-dict names and shapes architectures.json records (no weights).
ARCHITECTURES = ["mobilenet_v3_large", "mobilenet_v3_small"] + [f"efficientnet_b{i}" for i in range(8)] + [
    "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0",
    "mnasnet1_3"] + [f"regnet_{v}_{s}" for v, s in [
        ("y", "400mf"), ("y", "800mf"), ("y", "1_6gf"), ("y", "3_2gf"), ("y", "8gf"), ("y", "16gf"), ("y", "32gf"),
        ("y", "128gf"), ("x", "400mf"), ("x", "800mf"), ("x", "1_6gf"), ("x", "3_2gf"), ("x", "8gf"), ("x", "16gf"),
        ("x", "32gf")]] + [f"shufflenet_v2_{w}" for w in ["x0_5", "x1_0", "x1_5", "x2_0"]] + [
    f"densenet{n}" for n in [121, 161, 169, 201]] + [f"convnext_{s}" for s in ["tiny", "small", "base", "large"]] + [
    "squeezenet1_0", "squeezenet1_1", "googlenet", "inception_v3"]


# The builder as pth2swt builds it: GoogLeNet and Inception v3 without their auxiliary classifiers (their
# files' aux keys are read and dropped).
BUILDER_ARGS = {"googlenet": {"aux_logits": False, "init_weights": False},
                "inception_v3": {"aux_logits": False, "init_weights": False}}


def legacy_densenet_names(sd):
    """A state dict as torchvision's published DenseNet files hold it: saved before torchvision 0.3
    (`denselayer1.norm1.weight` was `denselayer1.norm.1.weight`, the inverse of its `_load_state_dict`
    pattern) and before torch 0.4.1 (no num_batches_tracked, no _metadata)."""
    import re
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    out = type(sd)()
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        m = pattern.match(k)
        out[m.group(1) + "." + m.group(2) if m else k] = v
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", help="comma-separated cases to write, keeping the others' files and entries "
                        "(torch's rounding differs by a few ulps from CPU to CPU; this leaves committed goldens "
                        "alone)")
    args = parser.parse_args()
    only = set(args.cases.split(",")) if args.cases else None
    if only and not only <= set(CASES) | {"mobilenet_v2-real"}:
        parser.error(f"unknown cases {sorted(only - set(CASES))}")
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    cases = {}
    if only and (OUT / "families.json").exists():
        cases = json.loads((OUT / "families.json").read_text())["cases"]
    for seed, (name, case) in enumerate(CASES.items(), start=11):
        if only and name not in only:
            continue
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        model = build(case)
        randomise_bn(model, g)
        randomise_biases(model, g)
        if case.get("randomise_linears"):
            randomise_linears(model, g)
        if case.get("randomise_layer_norms"):
            randomise_layer_norms(model, g)
        x = torch.randn(*case["input_shape"], generator=g)
        if case.get("calibrate_bn"):
            # Deep stacks of BasicConv2d with random running statistics scale the values far from 1 and the
            # logits come out the same for every image: the running statistics are set to this input's
            # batch statistics instead (γ and β stay random).
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.momentum = None
            aux = {k: getattr(model, k) for k in ["AuxLogits", "aux1", "aux2"] if getattr(model, k, None) is not None}
            for k in aux:
                setattr(model, k, None)  # train mode would run them; they are not what is checked
            model.train()
            model(x)
            for k, v in aux.items():
                setattr(model, k, v)
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = 0.1
        model.eval()
        logits = model(x)
        sd = model.state_dict()
        torch.save(legacy_densenet_names(sd) if case.get("legacy_names") else sd, OUT / f"{name}.pth")
        np.save(OUT / f"{name}.input.npy", x.numpy())
        np.save(OUT / f"{name}.logits.npy", logits.numpy())
        cases[name] = dict(case, weights=f"{name}.pth", input=f"{name}.input.npy", logits=f"{name}.logits.npy",
                           state_dict_keys=len(model.state_dict()), top5=top5(logits),
                           max_abs_logit=float(logits.abs().max()))
        print(f"{name}: {len(model.state_dict())} keys, logits {tuple(logits.shape)}, max |logit| {logits.abs().max():.4f}")

    shapes = {}
    for arch in ARCHITECTURES:
        model = getattr(torchvision.models, arch)(**BUILDER_ARGS.get(arch, {}))
        shapes[arch] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
        print(f"{arch}: {len(shapes[arch])} state-dict entries")
    (OUT / "architectures.json").write_text(json.dumps(
        {"generator": "Tests/Reference/make_golden_families.py", "torch": torch.__version__,
         "torchvision": torchvision.__version__, "state_dicts": shapes}) + "\n")

    real = REPO / "Weights" / "mobilenet_v2-b0353104.pth"
    if only and "mobilenet_v2-real" not in only:
        pass
    elif real.exists():
        from PIL import Image
        from torchvision import transforms as T
        tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        model = torchvision.models.mobilenet_v2()
        model.load_state_dict(torch.load(real))
        model.eval()
        x = torch.stack([tf(Image.open(REPO / "Tests" / "Fixtures" / "images" / p).convert("RGB")) for p in PHOTOS])
        logits = model(x)
        np.save(OUT / "mobilenet_v2-real.logits.npy", logits.numpy())
        cases["mobilenet_v2-real"] = {
            "weights": "Weights/mobilenet_v2-b0353104.pth (scripts/fetch_mobilenet_v2.sh)", "arch": "mobilenet_v2",
            "images": PHOTOS, "logits": "mobilenet_v2-real.logits.npy", "top5": top5(logits),
            "max_abs_logit": float(logits.abs().max()),
        }
        print(f"mobilenet_v2-real: top-5 {top5(logits)}")
    else:
        print(f"skipping the real MobileNetV2: {real} is absent (bash scripts/fetch_mobilenet_v2.sh)")

    meta = {"generator": "Tests/Reference/make_golden_families.py", "torch": torch.__version__,
            "torchvision": torchvision.__version__, "cases": cases}
    (OUT / "families.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
