"""A deliberately misbehaving Python policy: limen's limits and fail modes
apply to an interpreter too.

The first label of the SNI picks the misbehaviour; anything else passes
through to `upstream`:

| SNI        | what the guest does                  | limen sees        |
|------------|--------------------------------------|-------------------|
| `loop.*`   | spins forever in Python code         | fuel or deadline  |
| `raise.*`  | raises an exception out of `route`   | trap              |
| `alloc.*`  | builds a 1 GiB bytes object          | memory limit      |
| `print.*`  | prints and logs, then routes         | a normal decision |

    [policy.config]
    upstream = "127.0.0.1:9451"
"""

import json

import wit_world
from wit_world.imports import host, types


class WitWorld(wit_world.WitWorld):
    upstream = ""

    def init(self, config: str) -> None:
        WitWorld.upstream = json.loads(config)["upstream"]

    def route(self, conn, hello):
        sni = (hello.sni() if hello is not None else None) or ""
        label = sni.split(".")[0]
        if label == "loop":
            n = 0
            while True:
                n += 1
        if label == "raise":
            raise RuntimeError(f"asked to raise for {sni}")
        if label == "alloc":
            big = bytes(1 << 30)
            return _passthrough(f"{len(big)}:1")
        if label == "print":
            print(f"routing {sni}")
            host.log(host.Level.INFO, f"routing {sni}")
        return _passthrough(WitWorld.upstream)


def _passthrough(address):
    return types.Decision_Passthrough(
        types.Upstream(address, None, None, types.ProxyTlvs(0))
    )
