"Render nbs/index.ipynb as README.md (markdown cells as they are, code cells as Python blocks)."
import json, sys
from pathlib import Path

def render(nb_path) -> str:
    "README text for the notebook at `nb_path`."
    cells = json.loads(Path(nb_path).read_text())['cells']
    src = lambda c: ''.join(c['source']).strip()
    return '\n\n'.join(src(c) if c['cell_type'] == 'markdown' else f"```python\n{src(c)}\n```" for c in cells if src(c)) + '\n'

if __name__ == '__main__':
    root = Path(__file__).resolve().parents[1]
    text = render(root/'nbs'/'index.ipynb')
    if '--check' in sys.argv:
        if (root/'README.md').read_text() != text: sys.exit('README.md is out of date: run python tools/make_readme.py')
    else: (root/'README.md').write_text(text)
