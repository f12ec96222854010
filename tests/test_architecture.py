"""The package's shape: modules in data-flow order with no import of a later module and no import hidden in a function
(the command line aside, which imports lazily), no private name used across modules or by the benchmarks, and model
directories written by the release before the module split loading and predicting as they did."""
import ast, json, re
from pathlib import Path
import numpy as np, pandas as pd, pytest
from conftest import ROOT

PKG = ROOT/'lesion_analysis'
MODULES = [p for p in sorted(PKG.glob('*.py')) if not p.name.startswith('_')]

def module_order() -> list:
    "Module names in the order of their notebooks (nbs/NN_name.ipynb)."
    nbs = sorted(ROOT.glob('nbs/[0-9][0-9]_*.ipynb'))
    names = [json.loads(nb.read_text())['cells'][1]['source'][0].split()[-1] for nb in nbs]  # '#| default_exp name'
    return names

def package_imports(path:Path) -> list:
    "`(module imported, imported names, line, inside a function)` for each import of a lesion_analysis module in `path`."
    tree, out = ast.parse(path.read_text()), []
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(m) for f in funcs for m in ast.walk(f) if m is not f}
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and (n.level or (n.module or '').startswith('lesion_analysis')):
            mod = re.sub(r'^lesion_analysis\.?', '', n.module or '')
            out.append((mod, [a.name for a in n.names], n.lineno, id(n) in inside))
        elif isinstance(n, ast.Import):
            out += [(a.name.split('.', 1)[1], [], n.lineno, id(n) in inside) for a in n.names if a.name.startswith('lesion_analysis.')]
    return out

def test_modules_follow_the_notebook_order():
    order = module_order()
    assert sorted(order) == sorted(p.stem for p in MODULES), "every module has one numbered notebook"
    for p in MODULES:
        for mod, names, line, _ in package_imports(p):
            for m in ([mod] if mod else names):
                assert m in order, f"{p.name}:{line} imports unknown module {m}"
                assert order.index(m) < order.index(p.stem), f"{p.name}:{line} imports {m}, which comes later (or is itself)"

def test_no_import_inside_functions_except_the_cli():
    for p in MODULES:
        if p.stem == 'cli': continue
        tree = ast.parse(p.read_text())
        for f in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            hidden = [m.lineno for m in ast.walk(f) if isinstance(m, (ast.Import, ast.ImportFrom))]
            assert not hidden, f"{p.name}:{hidden[0]}: import inside {f.name}()"

def test_no_private_names_across_modules_or_in_benchmarks():
    for p in [*MODULES, *sorted((ROOT/'bench').glob('*.py'))]:
        for mod, names, line, _ in package_imports(p):
            private = [n for n in names if n.startswith('_')]
            assert not private, f"{p.relative_to(ROOT)}:{line} imports private {private} from {mod}"

LEGACY = ROOT/'tests'/'legacy'

@pytest.mark.parametrize('name', ['classifier', 'fusion'])
def test_legacy_classifiers_predict_as_before(name):
    from lesion_analysis.infer import Classifier, predict
    inputs = pd.read_csv(LEGACY/'inputs.csv').assign(image=lambda d: [str(LEGACY/'images'/i) for i in d.image])
    clf = Classifier(LEGACY/name)
    got = predict(clf, inputs, tta='flips', progress=False)
    want = pd.read_csv(LEGACY/name/'expected_flips.csv')
    assert [Path(i).name for i in got.image] == want.image.tolist()
    np.testing.assert_allclose(got[clf.classes].to_numpy(), want[clf.classes].to_numpy(), atol=1e-5)

def test_legacy_segmenter_predicts_as_before():
    from lesion_analysis.segment import Segmenter
    images = [str(LEGACY/'images'/i) for i in pd.read_csv(LEGACY/'inputs.csv').image]
    want = np.load(LEGACY/'segmenter'/'expected_flips.npz')
    for i, got in enumerate(Segmenter(LEGACY/'segmenter').predict(images, tta='flips')):
        np.testing.assert_allclose(got, want[f'arr_{i}'], atol=1e-5)
