"""The ``minitvm`` command's argument types: input shapes, image sizes, numbers with a floor."""
import argparse
import re

import pytest

from minitvm.cli.options import at_least, image_size, input_shapes


@pytest.mark.parametrize("text, shapes", [
    ("data:[1,3,224,224]", {"data": (1, 3, 224, 224)}),
    ("a:[1,3] b:[1, 5]", {"a": (1, 3), "b": (1, 5)}),
    ("a:[1,3],b:[2]", {"a": (1, 3), "b": (2,)}),
    ("input:0:[8,16]", {"input:0": (8, 16)}),
    ("[16,3,224,224]", {None: (16, 3, 224, 224)}),
    ("scalar:[]", {"scalar": ()}),
])
def test_input_shapes_are_read(text, shapes):
    assert input_shapes(text) == shapes


@pytest.mark.parametrize("text, message", [
    ("data:[1,3,224", "cannot read 'data:[1,3,224'; expected NAME:[d1,d2,...]"),
    ("data:(1,3)", "cannot read 'data:(1,3)'"),
    ("data:[1,x]", "the shape [1,x] of data must be integers"),
    ("data:[1,-1]", "has a dimension below 1"),
    ("data:[1,0]", "has a dimension below 1"),
    ("a:[1] a:[2]", "input a is given twice"),
    ("a:[1] junk", "cannot read 'junk'"),
    ("", "no shape given"),
])
def test_bad_input_shapes_name_the_text(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        input_shapes(text)


def test_image_sizes():
    assert image_size("224") == 224
    assert image_size("320x240") == (320, 240)
    assert image_size("32X48") == (32, 48)
    for bad in ("224x", "x224", "2.5", "0", "-3", "224x0", "big"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a size N or HxW|must be positive"):
            image_size(bad)


def test_numbers_with_a_floor():
    assert at_least(1)("3") == 3
    assert at_least(0.0, float)("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 1, got 0"):
        at_least(1)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="'1.5' is not an integer"):
        at_least(1)("1.5")
