#!/usr/bin/env python3
"""Minimise the n-dimensional Rosenbrock function with scipy's L-BFGS-B, values and gradients from
adjoint's REST API. Debian packages only: python3-requests, python3-numpy, python3-scipy.

    /usr/bin/python3 examples/python/rest_client.py --url http://localhost:8080 --n 10

The function is registered once (POST /v1/functions) and then named by its id, a content hash. Any
replica can compute it, but a replica that has not seen the id (a fresh one, or one that evicted it)
answers 404 with kind "not_found": the client then sends the same request with the definition, which
also teaches that replica the id. With several --url the client spreads its calls over them in turn,
as a load balancer would, and so meets that case on purpose.
"""

import argparse
import itertools
import sys
import time

import numpy as np
import requests

sys.dont_write_bytecode = True  # no __pycache__ beside the examples
from rosenbrock import definition, report, solve  # noqa: E402


class AdjointRest:
    def __init__(self, urls, function, timeout=60.0):
        self.urls = itertools.cycle(urls)
        self.session = requests.Session()
        self.function = function
        self.timeout = timeout
        self.resent = 0
        self.id = None

    def register(self, url):
        answer = self._post(url, "/v1/functions", {"function": self.function})
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"registration failed: HTTP {answer.status_code}: {answer.text}")
        self.id = answer.json()["id"]
        return self.id

    def value_and_gradient(self, x):
        url = next(self.urls)
        body = {"function": {"id": self.id}, "point": {"x": x.tolist()}}
        answer = self._post(url, "/v1/differentiate", body)
        if answer.status_code == 404 and answer.json().get("kind") == "not_found":
            # This replica does not know the id: send the definition instead (same id, same numbers).
            self.resent += 1
            body["function"] = self.function
            answer = self._post(url, "/v1/differentiate", body)
        if answer.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {answer.status_code}: {answer.text}")
        result = answer.json()
        if result["id"] != self.id:
            raise RuntimeError(f"{url} computed {result['id']}, not {self.id}")
        return result["value"], np.asarray(result["gradient"]["x"]["data"], dtype=float)

    def _post(self, url, path, body, attempts=5):
        """POST, waiting and trying again while the service is busy (503 + Retry-After) or unreachable."""
        for attempt in range(attempts):
            try:
                answer = self.session.post(url + path, json=body, timeout=self.timeout)
            except requests.ConnectionError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
                continue
            if answer.status_code != 503 or attempt == attempts - 1:
                return answer
            time.sleep(float(answer.headers.get("Retry-After", "1")))
        raise AssertionError("unreachable")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="base URL of a replica (repeat for several)")
    parser.add_argument("--n", type=int, default=10, help="dimension (default 10)")
    args = parser.parse_args(argv)
    urls = [u.rstrip("/") for u in (args.url or ["http://localhost:8080"])]

    client = AdjointRest(urls, definition(args.n))
    client.register(urls[0])
    result = solve(client.value_and_gradient, args.n)
    return report("rest", result, n=args.n, id=client.id, replicas=len(urls), resent=client.resent)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
