// A deliberately misbehaving JavaScript policy: limen's limits and fail
// modes apply to a JS engine too.
//
// The first label of the SNI picks the misbehaviour; anything else passes
// through to `upstream`:
//
// | SNI        | what the guest does                  | limen sees        |
// |------------|--------------------------------------|-------------------|
// | `loop.*`   | spins forever in JS code             | fuel or deadline  |
// | `throw.*`  | throws out of `route`                | trap              |
// | `alloc.*`  | allocates a 1 GiB ArrayBuffer        | memory limit      |
// | `print.*`  | console.log and host log, then routes | a normal decision |
//
//   [policy.config]
//   upstream = "127.0.0.1:9451"

import { log } from "limen:router/host@0.2.2";

let upstream = "";

function passthrough(address) {
  return {
    tag: "passthrough",
    val: {
      address,
      proxyProtocol: undefined,
      connectTimeoutMs: undefined,
      proxyTlvs: { authority: false, alpn: false, ja4: false },
    },
  };
}

export function init(config) {
  upstream = JSON.parse(config).upstream;
}

export function route(conn, hello) {
  const sni = hello?.sni() ?? "";
  const label = sni.split(".")[0];
  if (label === "loop") {
    let n = 0;
    for (;;) {
      n++;
    }
  }
  if (label === "throw") {
    throw new Error(`asked to throw for ${sni}`);
  }
  if (label === "alloc") {
    const big = new ArrayBuffer(1 << 30);
    return passthrough(`${big.byteLength}:1`);
  }
  if (label === "print") {
    console.log(`routing ${sni}`);
    log("info", `routing ${sni}`);
  }
  return passthrough(upstream);
}
