"""The Dockerfile's base images are pinned by digest with their tag beside it, as k8s/values.yaml pins its images.

A base image whose digest nobody has verified here yet (no registry is reachable from the development machines) has a
tag-only default only while it is listed here, its comment tells the builder to pass a pinned reference, and its stage
stops the build unless one was passed (no invented digest, and no image built on a movable tag)."""

from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "k8s" / "Dockerfile"
PINNED = re.compile(r"^[\w./-]+:[\w][\w.-]{0,127}@sha256:[0-9a-f]{64}$")
AWAITING_DIGEST = {"GPU_BASE_IMAGE"}  # vllm/vllm-openai:v0.33.0: no verified digest yet (see the Dockerfile)


def test_every_base_image_is_pinned_by_digest_with_its_tag() -> None:
    text = DOCKERFILE.read_text()
    images = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", text, flags=re.MULTILINE))
    assert set(images) == {"PYTHON_IMAGE", "GPU_BASE_IMAGE"}
    for name, reference in images.items():
        if name in AWAITING_DIGEST:  # the build says how to pin it, and refuses to go on without a digest
            assert f"--build-arg {name}={reference}@sha256:<digest" in text, name
            assert re.search(rf'case "\$\{{{name}\}}" in \*:\*@sha256:\*\) ;;.*?exit 1', text, flags=re.S), name
        else:
            assert PINNED.match(reference), f"{name}={reference} is not pinned as tag@sha256:digest"
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert stages and all(stage.startswith("${") for stage in stages), "every FROM goes through a pinned ARG"
