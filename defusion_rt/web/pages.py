"""The web app's pages: plain HTML with a little JavaScript, no build step and no external assets."""
from __future__ import annotations

import html

STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
nav{background:#222;padding:.6em 1em}nav a{color:#eee;margin-right:1.5em;text-decoration:none}
main{max-width:1100px;margin:1em auto;padding:0 1em}label{margin-right:1em}fieldset{margin:.6em 0}
.row{display:flex;gap:1em;flex-wrap:wrap}.row figure{margin:0}.row img{max-width:330px}
figcaption{font-size:13px;color:#555}#msg{color:#b00;font-weight:bold}
.compare{position:relative;display:inline-block;max-width:100%}.compare img{display:block;max-width:100%}
.compare .top{position:absolute;top:0;left:0;overflow:hidden;height:100%}.compare .top img{max-width:none}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}tr.chosen{font-weight:bold;background:#eef}
</style>"""

NAV = '<nav><a href="/">fuse a pair</a><a href="/live">live view</a><a href="/bench">benchmarks</a></nav>'


def _page(title: str, body: str) -> bytes:
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>{STYLE}</head><body>{NAV}'
            f"<main>{body}</main></body></html>").encode()


FUSE = """<h2>Fuse two images</h2>
<form id="f" enctype="multipart/form-data">
<fieldset><legend>the pair</legend>
<label>A (IR, under-exposed, or focus A) <input type="file" name="a" accept="image/*"></label>
<label>B (visible, over-exposed, or focus B) <input type="file" name="b" accept="image/*"></label><br>
<label>or an example <select name="example" id="example"><option value="">(upload above)</option>%EXAMPLES%</select></label>
<small>at most %MAX_MB% MB; A and B of the same size (register them first)</small></fieldset>
<fieldset><legend>how</legend>
<label>task <select name="task" id="task">%TASKS%</select></label>
<label>method <select name="method" id="method">%METHODS%</select></label>
<label><input type="checkbox" name="colour" value="1"> keep the visible image's colour (ir-vis)</label>
<button id="go">fuse</button></fieldset></form>
<p id="msg"></p>
<div id="result" hidden>
<p id="info"></p>
<div class="compare" id="compare"><img id="under" alt="source"><div class="top" id="top"><img id="fused" alt="fused"></div></div>
<br><label>before / after <input type="range" id="slider" min="0" max="100" value="50" style="width:300px"></label>
<label>compare with <select id="with"><option value="b">B</option><option value="a">A</option></select></label>
<a id="download" download="fused.png">download the fused image</a>
<h3>The sources</h3><div class="row" id="sources"></div>
<div id="parts-title"><h3>The decomposition: what the network found common and unique</h3>
<p class="note">From the network's self-supervised CUD weights (the shipped task weights are tuned for the fused
image alone; their other heads are not trained). CUD learned "unique" as what one view shows where the other view's
pixels were replaced by noise: in a real pair both sources show the whole scene, so most of it, warm bodies
included, is common, and the unique images are faint: they are brightened for display by the factor given.</p></div>
<div class="row" id="parts"></div>
<h3>Metrics on this pair (higher is better)</h3><table id="metrics"></table></div>
<script>
const $ = id => document.getElementById(id);
document.getElementById("example").onchange = e => { if (e.target.value) $("task").value = e.target.value; };
function fig(src, cap) { return `<figure><img src="${src}"><figcaption>${cap}</figcaption></figure>`; }
function slide() { const img = $("fused"), top = $("top");
  img.style.width = $("under").clientWidth + "px"; top.style.width = $("slider").value + "%"; }
$("slider").oninput = slide; window.onresize = slide;
let last = null;
$("with").onchange = () => { if (last) { $("under").src = last.images[$("with").value]; } };
$("f").onsubmit = async e => {
  e.preventDefault(); $("msg").textContent = "fusing..."; $("go").disabled = true;
  try {
    const r = await fetch("/fuse", {method: "POST", body: new FormData(e.target)});
    if (!r.ok) { $("msg").textContent = await r.text(); $("result").hidden = true; return; }
    const d = last = await r.json();
    $("under").src = d.images[$("with").value]; $("fused").src = d.images.fused; $("download").href = d.images.fused;
    $("under").onload = slide;
    $("info").textContent = `${d.width}x${d.height}, ${d.engine}, ${d.seconds.toFixed(2)} s` +
      (d.note ? ` (${d.note})` : "");
    $("sources").innerHTML = fig(d.images.a, "A") + fig(d.images.b, "B") + fig(d.images.fused, "fused");
    const parts = Object.keys(d.parts);
    $("parts-title").hidden = !parts.length;
    $("parts").innerHTML = parts.map(k => fig(d.parts[k], k.replace("_", " ") +
      (d.gains[k] > 1 ? ` (x${d.gains[k].toFixed(1)} for display)` : ""))).join("");
    $("metrics").innerHTML = "<tr><th>method</th>" + d.columns.map(c => `<th>${c}</th>`).join("") + "</tr>" +
      d.metrics.map((m, i) => `<tr class="${i ? "" : "chosen"}"><td>${m.method}</td>` +
        d.columns.map(c => `<td>${m[c].toFixed(3)}</td>`).join("") + "</tr>").join("");
    $("result").hidden = false; $("msg").textContent = "";
  } catch (err) { $("msg").textContent = "the server did not answer: " + err; }
  finally { $("go").disabled = false; }
};
</script>"""


def fuse_page(tasks: list[str], methods: list[str], examples: dict[str, str], max_mb: int) -> bytes:
    opt = lambda values: "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)
    ex = "".join(f'<option value="{k}" title="{html.escape(v)}">{k}: {html.escape(v)}</option>'
                 for k, v in examples.items())
    body = FUSE.replace("%EXAMPLES%", ex).replace("%MAX_MB%", str(max_mb)).replace("%TASKS%", opt(tasks)) \
        .replace("%METHODS%", opt(methods))
    return _page("defusion-rt", body)


def live_page(url: str) -> bytes:
    body = f"""<h2>Live view</h2>
<p>Start a run with a live view, e.g. <code>defusion-rt run --a 0 --b 1 --serve 8090</code>, and give its address
(start this app with <code>--live http://HOST:8090/</code> to fill it in).</p>
<label>address <input id="url" size="50" value="{html.escape(url)}"></label> <button id="show">show</button>
<label><input type="checkbox" id="sbs"> A | B | fused</label>
<div><img id="stream" alt="no live view yet" style="max-width:100%"></div><pre id="stats"></pre>
<script>
const $ = id => document.getElementById(id);
function base() {{ const u = new URL($("url").value); return u; }}
function show() {{ if (!$("url").value) return; const u = base(); const tok = u.searchParams.get("token");
  const q = "view=" + ($("sbs").checked ? "sbs" : "fused") + (tok ? "&token=" + encodeURIComponent(tok) : "");
  $("stream").src = new URL("stream.mjpg?" + q, u.origin + u.pathname).href; }}
async function poll() {{ if (!$("url").value) return; const u = base(); const tok = u.searchParams.get("token");
  try {{ const r = await fetch(new URL("stats.json" + (tok ? "?token=" + encodeURIComponent(tok) : ""),
    u.origin + u.pathname)); $("stats").textContent = JSON.stringify(await r.json(), null, 1); }} catch (e) {{}} }}
$("show").onclick = show; $("sbs").onchange = show; show(); setInterval(poll, 1000);
</script>"""
    return _page("defusion-rt live", body)


def bench_page(table_md: str, has_plot: bool, folder: str) -> bytes:
    if not table_md:
        return _page("defusion-rt benchmarks", f"<h2>Benchmarks</h2><p>No saved results in <code>{html.escape(folder)}"
                     "</code>: run <code>defusion-rt bench</code>, or start this app with <code>--results DIR</code>."
                     "</p>")
    lines = [line.strip().strip("|").split("|") for line in table_md.splitlines() if line.strip()]
    head, rows = lines[0], lines[2:]
    table = "<table><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(c.strip().strip('`'))}</td>" for c in r) + "</tr>" for r in rows) + "</table>"
    plot = '<img src="/bench/plot.png" alt="FPS at 640x480" style="max-width:100%">' if has_plot else ""
    return _page("defusion-rt benchmarks", f"<h2>Benchmarks</h2><p>Saved results from <code>{html.escape(folder)}"
                 f"</code>, as measured (see the README for what was and was not verified).</p>{plot}{table}")
