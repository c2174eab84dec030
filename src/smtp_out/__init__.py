"""Build, check, test, benchmark and operate the smtp-out mail relay image."""

from pathlib import Path

#: The repository root (the folder holding tasks.py), when run from a checkout.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where the images' build contexts live: one folder per image, named after it.
SERVICES_DIR = REPO_ROOT / "docker-services"
#: The image under test and its build context.
IMAGE = "smtp-out"
IMAGE_CONTEXT = SERVICES_DIR / IMAGE
#: Label put on every container and network this package creates, so leftovers can be found.
LABEL = "smtp-out.tools"
