"""A Metacontroller CompositeController stand-in for the end-to-end tests (not the product).

`CompositeDriver(Kube(kubeconfig), with_hooks_url(controller, url)).start()` runs the one
CompositeController of metacontroller/compositecontroller.yaml against a real API server and
the hooks at `url`. See docs/e2e.md; with real Metacontroller the suite runs without it.
"""

from tests.e2e.driver.controller import CompositeDriver, with_hooks_url
from tests.e2e.driver.kube import Informer, Kube

__all__ = ["CompositeDriver", "Informer", "Kube", "with_hooks_url"]
