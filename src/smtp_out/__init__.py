"""Build, check, test, benchmark and operate the smtp-out mail relay image.

Layers, each importing only from the ones before it:
  errors, checks, cli        the core: typed failures, checks as data, the exit-code contract
  project, mail, dkim,       what every layer shares: where the checkout is, SMTP as the app
  material                   speaks it, DKIM keys and signatures, throwaway TLS material
  engine/                    the Docker client, images, containers, networks
  ops/                       what an operator runs: smoke, config-test, queue, pins, ...
  testing/                   the hermetic test network and its peer image
  bench/                     measuring, and reporting what was measured
"""

#: The image under test (and the folder under docker-services/ it is built from).
IMAGE = "smtp-out"
#: Postfix's queue directory inside the image: the mount point of the queue volume.
SPOOL = "/var/spool/postfix"
#: Label put on every container and network this package creates, so leftovers can be found.
LABEL = "smtp-out.tools"
