// The operator view under the two failure kinds (tests/app/test_browser_failures.py starts the operators as
// processes behind an RPC relay it can cut; DDX_CLUSTER_INFO: {apis, pids, control}):
//  1. the chain's RPC down: "Settlement clock (chain): degraded", a chain-clock alarm, while Raft stays healthy and
//     keeps committing; back to healthy when the RPC returns;
//  2. the leader killed: its row "down", "Sequencing clock (Raft): degraded", a cluster-clock alarm, a new leader,
//     and checkpoints still recorded (a newer epoch reaches "final").
// No console errors but the browser's own reports of the killed operator refusing connections.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { openPage } from "./session.mjs";

const info = JSON.parse(readFileSync(process.env.DDX_CLUSTER_INFO, "utf8"));
const shots = process.env.DDX_SCREENSHOTS;
const status = async (api) => (await fetch(api + "/v1/status")).json();

test("the operator view tells a cluster failure from a chain failure", { timeout: 400000 }, async (t) => {
  const leaderId = (await status(info.apis[0])).raft.leader;
  const operators = (await (await fetch(info.apis[0] + "/v1/info")).json()).operators;
  const leaderApi = operators.find((o) => Number(o.id) === leaderId).api;
  const pageApi = info.apis.find((a) => a !== leaderApi);

  let killed = null; // the killed operator's API: the browser's reports of its refused connections are expected
  const { page, problems, shot, until } = await openPage(t, {
    shots, timeout: 60000, report: ["#cluster-health", "#alarms"],
    consoleError: (msg) => !(killed && msg.location().url.startsWith(killed) && /ERR_CONNECTION_REFUSED|Failed to fetch/.test(msg.text())),
  });
  const health = () => page.locator("#cluster-health").innerText();

  await page.goto(pageApi + "/app/");
  await until(() => /Sequencing clock \(Raft\): healthy — 4 of 4/.test(document.querySelector("#cluster-health").textContent)
    && /Settlement clock \(chain\): healthy/.test(document.querySelector("#cluster-health").textContent));
  await until(() => document.querySelector("#epochs-timeline li[data-stage=final]"));
  await shot("all-healthy");

  await t.test("RPC down: the settlement clock degrades, sequencing goes on", async () => {
    await fetch(info.control + "/rpc/down");
    await until(() => /Settlement clock \(chain\): degraded \(RPC\)/.test(document.querySelector("#cluster-health").textContent));
    await until(() => [...document.querySelectorAll("#alarms li.alarm.chain")].some((li) => /RPC failing/.test(li.textContent)));
    assert.match(await health(), /Sequencing clock \(Raft\): healthy — 4 of 4/);
    const before = (await status(pageApi)).raft.commitIndex;
    await new Promise((r) => setTimeout(r, 3000));
    assert.ok((await status(pageApi)).raft.commitIndex > before, "Raft keeps committing while the chain is unreachable");
    await shot("rpc-down");
    await fetch(info.control + "/rpc/up");
    await until(() => /Settlement clock \(chain\): healthy/.test(document.querySelector("#cluster-health").textContent), null, 90000);
  });

  await t.test("leader killed: the cluster clock degrades, a new leader, checkpoints continue", async () => {
    const newestFinal = async () => Math.max(-1, ...await page.$$eval("#epochs-timeline li[data-stage=final]", (lis) => lis.map((li) => Number(li.dataset.epoch))));
    const finalBefore = await newestFinal();
    killed = leaderApi;
    process.kill(info.pids[leaderApi], "SIGKILL");
    await until(() => /Sequencing clock \(Raft\): degraded — 3 of 4 operators up/.test(document.querySelector("#cluster-health").textContent));
    await until(() => [...document.querySelectorAll("#alarms li.alarm.cluster")].some((li) => /unreachable/.test(li.textContent)));
    const row = page.locator("#operator-rows tr", { hasText: "down" });
    assert.equal(await row.count(), 1);
    await until((old) => {
      const m = /leader (\d+)/.exec(document.querySelector("#cluster-health").textContent);
      return m && Number(m[1]) !== old;
    }, leaderId);
    await until((before) => [...document.querySelectorAll("#epochs-timeline li[data-stage=final]")].some((li) => Number(li.dataset.epoch) > before), finalBefore, 120000);
    assert.match(await health(), /Settlement clock \(chain\): healthy/);
    await shot("leader-killed");
  });

  await t.test("no console errors but the killed operator's refused connections", () => {
    assert.deepEqual(problems, []);
  });
});
