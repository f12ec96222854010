"""Keep the notebooks' saved outputs small: downscale every output image to at most `--width` pixels wide and store it as JPEG
where that is smaller than PNG. Run after `nbdev-test --save` (which executes the notebooks and saves their outputs):

    nbdev-test --save && python tools/shrink_outputs.py
"""
import argparse, base64, io, json
from pathlib import Path
from PIL import Image

def shrink(data:dict, width:int, quality:int) -> dict:
    "An output's data with its PNG image downscaled and re-encoded, whichever of PNG and JPEG is smaller."
    if 'image/png' not in data: return data
    im = Image.open(io.BytesIO(base64.b64decode(data['image/png'])))
    if im.width > width: im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    png, jpg = io.BytesIO(), io.BytesIO()
    im.save(png, 'PNG', optimize=True)
    im.convert('RGB').save(jpg, 'JPEG', quality=quality, optimize=True)
    best = ('image/jpeg', jpg) if jpg.tell() < png.tell() else ('image/png', png)
    rest = {k: v for k, v in data.items() if k != 'image/png'}
    return {**rest, best[0]: base64.b64encode(best[1].getvalue()).decode()}

def shrink_notebook(path:Path, width:int=900, quality:int=80) -> tuple:
    "Shrink the output images of the notebook at `path` in place; return its size before and after."
    before = path.stat().st_size
    nb = json.loads(path.read_text())
    for c in nb['cells']:
        for o in c.get('outputs', []):
            if 'data' in o: o['data'] = shrink(o['data'], width, quality)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return before, path.stat().st_size

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('notebooks', nargs='*', type=Path, default=sorted(Path(__file__).resolve().parents[1].glob('nbs/*.ipynb')))
    p.add_argument('--width', type=int, default=900); p.add_argument('--quality', type=int, default=80)
    a = p.parse_args()
    for nb in a.notebooks:
        b, s = shrink_notebook(nb, a.width, a.quality)
        if b != s: print(f"{nb.name}: {b / 1024:.0f} KB -> {s / 1024:.0f} KB")
