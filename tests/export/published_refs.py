"""The published detectors' own model and preprocessing code, transcribed for tests (random weights).

Model definitions follow the anchors line for line (see fakewatch/core/published.py for the files):
selimsef ``DeepFakeClassifier``, SBI ``Detector`` (EfficientNet-PyTorch, the package their code imports) and
DeepfakeBench ``EfficientNetB4`` + ``EfficientDetector``. Checkpoints are saved in the containers the authors'
training scripts write. The NumPy/OpenCV transforms are their inference code with the file reading removed.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def randomize_(model: nn.Module, seed: int, x: torch.Tensor, var_floor: float = 0.0) -> nn.Module:
    """Random BatchNorm affine terms, then running statistics measured on ``x`` (data-dependent init).

    With default or random running statistics a random EfficientNet maps every image to nearly the same features,
    and a wrong padding or mapping would go unnoticed; calibrated statistics keep each layer's output at unit
    scale, so the backbone's output depends on its input as a trained one does.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                n = mod.num_features
                mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(n, generator=g) * 0.1)
                mod.reset_running_stats()
                mod.momentum = None          # cumulative average over the calibration pass
            elif isinstance(mod, nn.Linear):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * 0.05)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.5)
            elif isinstance(mod, nn.Conv2d):     # He init from the seed: the same weights on every run
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
        model.train()
        for mod in model.modules():          # no stochastic depth / dropout while measuring statistics
            if isinstance(mod, nn.Dropout) or type(mod).__name__ == "DropPath":
                mod.eval()
        model(x)
        if var_floor:
            # deep nets (B7): a channel with near-zero measured variance would blow up unseen inputs. The floor is
            # a fraction of the layer's median variance: an absolute one (+0.5) shrank every layer's signal until
            # B7's output no longer depended on its input
            for mod in model.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.running_var.clamp_(min=float(mod.running_var.median()) * var_floor)
    return model.eval()


def sensitize_(head: nn.Linear, pooled: torch.Tensor, spread: float = 6.0) -> None:
    """Set the head so the fake logit differs by ``spread`` between the first two calibration images.

    Random-weight backbones give features whose variation a random head barely sees (every image would score ~the
    same, and a wrong mapping could pass); this makes P(fake) depend strongly on the backbone's output.
    """
    with torch.no_grad():
        mean = pooled.mean(0)
        d = pooled[0] - pooled[1]
        w = d / d.dot(d) * spread
        b = -w.dot(mean)
        if head.out_features == 1:
            head.weight.copy_(w.unsqueeze(0))
            head.bias.copy_(b.reshape(1))
        else:   # two classes: logit_fake - logit_real = w.x + b
            head.weight.copy_(torch.stack([-w / 2, w / 2]))
            head.bias.copy_(torch.stack([-b / 2, b / 2]))


def _pool(feat: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(feat, 1).flatten(1)


# ----------------------------------------------------------------------------- selimsef (timm encoder)
class DeepFakeClassifier(nn.Module):
    """selimsef training/zoo/classifiers.py (encoder built without pretrained download)."""

    def __init__(self, encoder: str = "tf_efficientnet_b7", dropout_rate: float = 0.0) -> None:
        super().__init__()
        import timm

        self.encoder = timm.create_model(encoder, pretrained=False, drop_path_rate=0.2)
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(self.encoder.num_features, 1)

    def forward(self, x):
        x = self.encoder.forward_features(x)
        x = self.avg_pool(x).flatten(1)
        x = self.dropout(x)
        x = self.fc(x)
        return x


def sensitize_dfdc(model: DeepFakeClassifier, x: torch.Tensor) -> DeepFakeClassifier:
    with torch.no_grad():
        sensitize_(model.fc, _pool(model.encoder.forward_features(x)))
    return model


def save_dfdc(model: DeepFakeClassifier, path: Path) -> Path:
    """As train_classifier.py saves a DataParallel model: module.-prefixed keys, numpy float bce_best."""
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 40, "state_dict": sd, "bce_best": np.float64(0.1934)}, str(path))
    return path


def dfdc_prob(model: DeepFakeClassifier, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(x).squeeze(1)).numpy()


# ----------------------------------------------------------------------------- SBI (EfficientNet-PyTorch)
class SbiDetector(nn.Module):
    """mapooon src/inference/model.py ``Detector`` (from_name: the architecture from_pretrained builds)."""

    def __init__(self, name: str = "efficientnet-b4") -> None:
        super().__init__()
        from efficientnet_pytorch import EfficientNet

        self.net = EfficientNet.from_name(name, num_classes=2)

    def forward(self, x):
        return self.net(x)


def sensitize_sbi(model: SbiDetector, x: torch.Tensor) -> SbiDetector:
    with torch.no_grad():
        sensitize_(model.net._fc, _pool(model.net.extract_features(x)))
    return model


def save_sbi(model: SbiDetector, path: Path) -> Path:
    """As train_sbi.py saves: {"model", "optimizer", "epoch"} (SGD+SAM state reduced to plain data)."""
    opt = {"state": {}, "param_groups": [{"lr": 0.001, "momentum": 0.9, "rho": 0.05, "params": [0, 1]}]}
    torch.save({"model": model.state_dict(), "optimizer": opt, "epoch": 99}, str(path))
    return path


def sbi_prob(model: SbiDetector, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).softmax(1)[:, 1].numpy()


# ----------------------------------------------------------------------------- DeepfakeBench
class DfbEfficientNet(nn.Module):
    """DeepfakeBench training/networks/efficientnetb4.py (config: num_classes 2, inc 3, dropout false)."""

    def __init__(self, name: str = "efficientnet-b4") -> None:
        super().__init__()
        from efficientnet_pytorch import EfficientNet

        self.efficientnet = EfficientNet.from_name(name)
        stem_out = self.efficientnet._conv_stem.out_channels      # 48 for B4
        self.efficientnet._conv_stem = nn.Conv2d(3, stem_out, kernel_size=3, stride=2, bias=False)
        features = self.efficientnet._fc.in_features              # 1792 for B4
        self.efficientnet._fc = nn.Identity()
        self.last_layer = nn.Linear(features, 2)

    def features(self, x):
        return self.efficientnet.extract_features(x)

    def classifier(self, x):
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = x.view(x.size(0), -1)
        return self.last_layer(x)


class DfbDetector(nn.Module):
    """efficientnetb4_detector.py ``EfficientDetector``: features -> classifier -> softmax[:, 1]."""

    def __init__(self, name: str = "efficientnet-b4") -> None:
        super().__init__()
        self.backbone = DfbEfficientNet(name)

    def forward(self, x):
        return self.backbone.classifier(self.backbone.features(x))


def sensitize_dfb(model: DfbDetector, x: torch.Tensor) -> DfbDetector:
    with torch.no_grad():
        sensitize_(model.backbone.last_layer, _pool(model.backbone.features(x)))
    return model


def save_dfb(model: DfbDetector, path: Path) -> Path:
    torch.save(model.state_dict(), str(path))   # DeepfakeBench's trainer saves the bare detector state dict
    return path


def dfb_prob(model: DfbDetector, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(x), dim=1)[:, 1].numpy()


# ----------------------------------------------------------------------------- their preprocessing
def dfdc_input(frame_bgr: np.ndarray, bbox_xyxy, size: int = 380) -> np.ndarray:
    """kernel_utils: RGB frame, int box, crop with side//3 padding, isotropic resize, put_to_center, normalize."""
    frame = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    xmin, ymin, xmax, ymax = [int(b) for b in bbox_xyxy]
    w, h = xmax - xmin, ymax - ymin
    p_h, p_w = h // 3, w // 3
    crop = frame[max(ymin - p_h, 0):ymax + p_h, max(xmin - p_w, 0):xmax + p_w]

    def isotropically_resize_image(img, size, interpolation_down=cv2.INTER_AREA, interpolation_up=cv2.INTER_CUBIC):
        h, w = img.shape[:2]
        if max(w, h) == size:
            return img
        if w > h:
            scale = size / w
            h = h * scale
            w = size
        else:
            scale = size / h
            w = w * scale
            h = size
        interpolation = interpolation_up if scale > 1 else interpolation_down
        return cv2.resize(img, (int(w), int(h)), interpolation=interpolation)

    def put_to_center(img, input_size):
        img = img[:input_size, :input_size]
        image = np.zeros((input_size, input_size, 3), dtype=np.uint8)
        start_w = (input_size - img.shape[1]) // 2
        start_h = (input_size - img.shape[0]) // 2
        image[start_h:start_h + img.shape[0], start_w: start_w + img.shape[1], :] = img
        return image

    return put_to_center(isotropically_resize_image(crop, size), size)   # uint8 RGB HWC


def sbi_input(frame_bgr: np.ndarray, bbox_xyxy, size: int = 380) -> np.ndarray:
    """SBI inference/preprocess.py: RGB, crop_face(phase='test', crop_by_bbox=True), cv2.resize to (380, 380)."""
    img = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    H, W = len(img), len(img[0])
    x0, y0, x1, y1 = bbox_xyxy
    w, h = x1 - x0, y1 - y0
    w0_margin = w / 4 * 0.5
    w1_margin = w / 4 * 0.5
    h0_margin = h / 4 * 0.5
    h1_margin = h / 4 * 0.5
    y0_new = max(0, int(y0 - h0_margin))
    y1_new = min(H, int(y1 + h1_margin) + 1)
    x0_new = max(0, int(x0 - w0_margin))
    x1_new = min(W, int(x1 + w1_margin) + 1)
    return cv2.resize(img[y0_new:y1_new, x0_new:x1_new], dsize=(size, size))


def dfb_input(face_crop_bgr: np.ndarray, size: int = 256) -> np.ndarray:
    """DeepfakeBench load_rgb on an (already cropped) face image."""
    img = cv2.cvtColor(face_crop_bgr, cv2.COLOR_BGR2RGB)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def to_model_input(rgb_uint8: np.ndarray, mean, std) -> np.ndarray:
    """ToTensor (/255) then Normalize(mean, std), as torchvision does it, in float32."""
    x = torch.from_numpy(rgb_uint8).permute(2, 0, 1).float() / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return ((x - m) / s).numpy()
