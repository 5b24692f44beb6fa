# pytest fixtures for the pypegasus3 compatibility suite: reactor thread, cluster (external via
# PEGASUS_META or a onebox started with ../../run.sh), a shared client, and unique hash keys.
import os
import time
import uuid

import pytest

import pgharness


def pytest_configure(config):
    config.addinivalue_line("markers", "restart: restarts the cluster; always runs last")


def pytest_collection_modifyitems(session, config, items):
    # Tests that restart the cluster go last, whatever order the files were given in.
    items.sort(key=lambda it: 1 if it.get_closest_marker("restart") else 0)


@pytest.fixture(scope="session")
def reactor_thread():
    pgharness.start_reactor()
    yield
    pgharness.stop_reactor()


@pytest.fixture(scope="session")
def cluster(reactor_thread):
    c = pgharness.Cluster()
    if c.managed:
        pgharness.log("starting onebox via %s" % c.run_sh)
    try:
        c.start()
        yield c
    finally:
        c.destroy()


@pytest.fixture(scope="session")
def client(cluster):
    cl = cluster.open_client()
    yield cl
    cl.close()


@pytest.fixture(scope="session")
def run_id():
    # unique per run so repeated runs against a long-lived cluster never see old data
    return "pyc-%d-%s" % (int(time.time()), uuid.uuid4().hex[:8])


@pytest.fixture
def hk(request, run_id):
    """A hash key unique to this test in this run (ASCII, so scanners can decode it)."""
    return "%s-%s" % (run_id, request.node.name.replace("[", "-").replace("]", ""))
