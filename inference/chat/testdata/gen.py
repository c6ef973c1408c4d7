# Writes templates.json: chat templates rendered by Python jinja2 configured as
# transformers configures it (ImmutableSandboxedEnvironment, trim_blocks,
# lstrip_blocks, raise_exception, tojson). Run: python3 gen.py (jinja2 3.x).
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from templates import T
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError
def raise_exception(m): raise TemplateError(m)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.globals['raise_exception'] = raise_exception
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env.filters['tojson'] = tojson
convs = {
 "sys_user": [{"role":"system","content":"You are Hermes 2."},{"role":"user","content":"  Hi there\nline2 "}],
 "user_asst_user": [{"role":"user","content":"a \"q\" é"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}],
 "bad_order": [{"role":"assistant","content":"x"}],
}
out = []
for name, src in T.items():
  for cname, msgs in convs.items():
    for agp in (False, True):
      try:
        r = env.from_string(src).render(messages=msgs, bos_token="<s>", eos_token="</s>", add_generation_prompt=agp)
        out.append(dict(template=name, conv=cname, agp=agp, out=r))
      except TemplateError as e:
        out.append(dict(template=name, conv=cname, agp=agp, error=str(e)))
json.dump(dict(templates=T, convs=convs, cases=out), open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'templates.json'), 'w'), ensure_ascii=False, indent=1)
print(len(out))
