import pytest
import torch

from survey_lib.errors import ConfigError
from survey_lib.models import MODELS, build_model


@pytest.mark.parametrize("name,shape,classes", [
    ("smallcnn", (2, 1, 28, 28), 2), ("smallcnn", (2, 3, 64, 64), 5),
    ("resnet18", (2, 1, 28, 28), 2), ("resnet18", (2, 3, 64, 64), 7),
    ("cnn3d", (2, 1, 28, 28, 28), 2), ("resnet3d", (2, 1, 28, 28, 28), 3),
    ("unet", (2, 3, 128, 128), 2),
])
def test_forward_shapes(name, shape, classes):
    model = build_model(name, shape[1], classes, width=8, image_size=shape[-1]).eval()
    out = model(torch.rand(shape))
    expected = (shape[0], classes, *shape[2:]) if name == "unet" else (shape[0], classes)
    assert out.shape == expected and torch.isfinite(out).all()


def test_normalization_lives_inside_the_model():
    model = build_model("smallcnn", 1, 2, width=8)
    assert model.normalize.mean.shape == (1, 1, 1, 1)
    assert "normalize.mean" in model.state_dict()  # saved and moved with the model
    # gradients flow to the [0, 1] input (attacks differentiate with respect to it)
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    model.eval()(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_width_is_configurable():
    small, big = (sum(p.numel() for p in build_model("resnet18", 1, 2, width=w).parameters())
                  for w in (16, 64))
    assert big > 10 * small


def test_unknown_model():
    with pytest.raises(ConfigError, match="Valid models: " + ", ".join(MODELS)):
        build_model("vgg", 1, 2)
