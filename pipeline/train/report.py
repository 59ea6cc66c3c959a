"""`streetorder evaluate --candidate X --report DIR`: one HTML page with per-class PR curves, confusion matrices
(PNG, matplotlib, offline) and the gate's verdict, for a reviewer deciding on a promotion."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np


def _pr_figure(cand: dict, cur: dict, part: str, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted(set(cand[part].get("pr_curves", {})) | set(cur[part].get("pr_curves", {})))
    if not classes:
        return False
    cols = min(3, len(classes))
    rows = -(-len(classes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, classes):
        for scores, style in ((cur, "--"), (cand, "-")):
            curve = scores[part].get("pr_curves", {}).get(name)
            if curve:
                ap = scores[part]["per_class"][name]["map50"]
                ax.plot(curve["recall"], curve["precision"], style, label=f"{scores['model']} AP50 {ap:.3f}")
        ax.set(title=name, xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(fontsize=8, loc="lower left")
    for ax in list(axes.flat)[len(classes):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _confusion_figure(scores: dict, part: str, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = scores[part].get("confusion")
    if not cm:
        return False
    m = np.array(cm["matrix"], dtype=float)
    labels = cm["classes"] + ["background"]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 0.55 * len(labels)), max(4.5, 1.0 + 0.5 * len(labels))))
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        if v:
            ax.text(j, i, int(v), ha="center", va="center", fontsize=7, color="white" if v > m.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set(xlabel="ground truth", ylabel="predicted")
    ax.set_title(f"{scores['model']} ({part}, score >= {cm['conf']}, IoU 0.5)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_report(out: Path, cand: dict, cur: dict, verdict) -> Path:
    """Write `out/index.html` and its images; returns the HTML file."""
    out.mkdir(parents=True, exist_ok=True)
    e = html.escape
    v = verdict.as_dict()
    parts = []
    for part, title in (("garbage_cn", "garbage-cn benchmark half (street classes)"), ("samples", "sample-version holdout (all labelling classes)")):
        if not cand[part].get("images"):
            continue
        imgs = []
        if _pr_figure(cand, cur, part, out / f"pr-{part}.png"):
            imgs.append(f'<img src="pr-{part}.png" alt="PR curves {part}">')
        for s, who in ((cand, "candidate"), (cur, "current")):
            if _confusion_figure(s, part, out / f"confusion-{part}-{who}.png"):
                imgs.append(f'<img src="confusion-{part}-{who}.png" alt="confusion {who}">')
        rows = "".join(
            f"<tr><td>{e(n)}</td><td>{c['map50']:.3f}</td><td>{cur[part]['per_class'].get(n, {}).get('map50', float('nan')):.3f}</td><td>{c['instances']}</td></tr>"
            for n, c in cand[part]["per_class"].items()
        )
        parts.append(
            f"<h2>{e(title)}: {cand[part]['images']} images</h2><p>mAP50 {cand[part]['map50']:.3f} (candidate) vs {cur[part]['map50']:.3f} (current)</p>"
            f"<table><tr><th>class</th><th>candidate AP50</th><th>current AP50</th><th>boxes</th></tr>{rows}</table>" + "".join(imgs)
        )
    checks = "".join(f"<tr class={'ok' if c['passed'] else 'fail'}><td>{'ok' if c['passed'] else 'FAIL'}</td><td>{e(c['check'])}</td><td>{e(c['detail'])}</td></tr>" for c in v["checks"])
    bench = cand["benchmark"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(cand['model'])} vs {e(cur['model'])}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}
.ok td:first-child{{color:#070}}.fail td:first-child{{color:#b00;font-weight:bold}}img{{max-width:100%;margin:.5em 0;display:block}}</style></head><body>
<h1>{e(cand['model'])} (candidate) vs {e(cur['model'])} (current)</h1>
<p>Benchmark {e(bench['name'])} ({e(bench['key'])}): {bench['garbage_cn_val_half']} garbage-cn val images, {bench['sample_holdout']} sample holdout images
({e(', '.join(bench['sample_versions']) or 'no sample versions')}), {bench['clean_streets']} clean streets. Never trained on.</p>
<h2>Gate: {'PROMOTE' if v['promote'] else 'DO NOT PROMOTE'}</h2><table>{checks}</table>
<p>Clean streets: {cand['clean_streets']['fp_per_image']} vs {cur['clean_streets']['fp_per_image']} false alarms per image.
Reviewed cases: candidate {e(str(cand['cases']))}; current {e(str(cur['cases']))}.</p>
{''.join(parts)}
</body></html>"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
