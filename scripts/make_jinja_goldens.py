#!/usr/bin/env python3
"""Goldens for jointnas's Jinja engine (jointnas/eval/jinja.cpp), rendered by Python's jinja2 the
way lm-evaluation-harness 0.4 renders task templates (lm_eval/utils.py apply_template:
Environment(undefined=StrictUndefined, keep_trailing_newline=True) + its regex_replace filter),
and, for templates lm-eval passes through ast.literal_eval (doc_to_choice, list-shaped
doc_to_target), the literal_eval of the output.

  python3 scripts/make_jinja_goldens.py            # writes tests/fixtures/eval/jinja_goldens.json

Requires jinja2 3.1 (3.1.6 used). Each case: template, vars, and either "out" (+ "literal" when
the output is a Python literal) or "error": true (jinja2 raised; the C++ side must throw too).
"""
import ast
import json
import os
import re

from jinja2 import BaseLoader, Environment, StrictUndefined


def regex_replace(string, pattern, repl, count: int = 0):
    return re.sub(pattern, repl, string, count=count)


env = Environment(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)
env.filters["regex_replace"] = regex_replace

ARC = {"question": "Which gas do plants use?", "answerKey": "B",
       "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": ["A", "B", "C", "D"]}}
OBQA = {"question_stem": "The sun is", "answerKey": " C",
        "choices": {"text": ["cold", "a planet", "a star", "blue"], "label": ["A", "B", "C", "D"]}}
SIQA = {"context": "Tracy didn't go home that evening.", "question": "What does Tracy need to do?",
        "answerA": "make a new plan", "answerB": "Go home", "answerC": "Find somewhere to go", "label": "3"}
PIQA = {"goal": "How do I ready a guinea pig cage?", "sol1": "Put sawdust in it.", "sol2": "Put wood chips.",
        "label": 1}
MMLU = {"question": "  Find all c in Z_3.\u0085", "choices": ["0", "1", "2", "3"], "answer": 1,
        "subject": "abstract_algebra"}
LAMBADA = {"text": "he looked at her and said , \" i love you , \" she smiled at him"}
BOOLQ = {"passage": "Ethanol fuel -- ethanol is alcohol.", "question": "is ethanol alcohol", "label": 1}
MISC = {"s": "  Hello, World!  ", "n": 7, "f": 2.5, "xs": [3, 1, 2], "words": ["a", "b", "c"],
        "d": {"k": "v", "n": 1}, "none": None, "t": True, "u": "caf\u00e9 \u00c9t\u00e9 \u0391\u03b2",
        "q": "it's", "qq": 'say "hi"', "both": "it's \"x\"", "tab": "a\tb\nc\\d", "items": [
            {"atext": "x", "n": 1}, {"atext": "y", "n": 2}], "label": "2", "e": "", "big": 1e16,
        "small": 0.0001, "tiny": 1e-05, "neg": -3, "nl": "line1\nline2\n"}

CASES = [
    # lm-eval's standard task templates (arc, openbookqa, siqa, piqa, mmlu, lambada, boolq, hellaswag)
    ("Question: {{question}}\nAnswer:", ARC),
    ("{{choices.label.index(answerKey)}}", ARC),
    ("{{choices.text}}", ARC),
    ("{{choices.label.index(answerKey.lstrip())}}", OBQA),
    ("Q: {{context}} {{question}}\nA:", SIQA),
    ("{{[answerA, answerB, answerC]}}", SIQA),
    ("{{ (label|int) - 1 }}", SIQA),
    ("{{[sol1, sol2]}}", PIQA),
    ("Question: {{goal}}\nAnswer:", PIQA),
    ("{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:", MMLU),
    ("The following are multiple choice questions (with answers) about {{subject.replace('_', ' ')}}.\n\n", MMLU),
    ("{{text.split(' ')[:-1]|join(' ')}}", LAMBADA),
    ("{{' '+text.split(' ')[-1]}}", LAMBADA),
    ("{{passage}}\nQuestion: {{question}}?\nAnswer:", BOOLQ),
    ("{{query}}", {"query": "Roof shingle removal: A man is sitting on a roof. He"}),
    ("{{label}}", {"label": "3"}),
    # templates of other lm-eval tasks (if / for / set / filters)
    ("{{ 'ABCD'[answerKey|int - 1] if answerKey|string in '1234' else answerKey }}", {"answerKey": "2"}),
    ("{{ 'ABCD'[answerKey|int - 1] if answerKey|string in '1234' else answerKey }}", {"answerKey": "C"}),
    ("{{correct_answer_id|int - 1}}", {"correct_answer_id": "4"}),
    ("{% if answer is not none %}{{answer[6:]}}{% else %}{{answer_number|string}}{% endif %}",
     {"answer": None, "answer_number": 42}),
    ("{% if answer is not none %}{{answer[6:]}}{% else %}{{answer_number|string}}{% endif %}",
     {"answer": "#### 17 apples", "answer_number": 17}),
    ("{% set group_id = idx.question|string %}{{[group_id+'_False', group_id+'_True']}}", {"idx": {"question": 12}}),
    ("{{answers|map(attribute='atext')|list}}", {"answers": MISC["items"]}),
    ("{% for i in range(choices['text']|length) %}\t{{ 'ABCD'[i] }}: {{ choices['text'][i] }}\n{% endfor %}", ARC),
    ("{% set letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' %}{% for choice in options %}{{letters[loop.index0]}}. {{choice}}\n{% endfor %}",
     {"options": ["red", "green"]}),
    ("{% set template = text[:pronoun_loc] %}{{[template+options[0], template+options[1]]}}",
     {"text": "The cat chased the dog because it was fast", "pronoun_loc": 32, "options": ["the cat", "the dog"]}),
    ("{% set index = pronoun_loc + pronoun | length %}{{text[index:]}}",
     {"text": "The cat chased the dog because it was fast", "pronoun_loc": 31, "pronoun": "it"}),
    ('{{story+"\\n\\n"}}{% for i in range(questions|length-1) %}{{"Q: "+questions[i]+"\\n\\n"+"A: "+answers["input_text"][i]+"\\n\\n"}}{% endfor %}{{"Q: "+questions[-1]+"\\n\\n"+"A:"}}',
     {"story": "Once.", "questions": ["Who?", "What?"], "answers": {"input_text": ["me", "it"]}}),
    ("{{ question | replace('Q:', '') | trim }}", {"question": "Q:  why? "}),
    ("{{ s | regex_replace('[,!]', '') }}|{{ s | regex_replace('(\\\\w+), (\\\\w+)', '\\\\2 \\\\1') }}", MISC),
    # values and Python str() / repr()
    ("{{n}} {{f}} {{t}} {{none}} {{xs}} {{d}} {{words|join}} {{big}} {{small}} {{tiny}} {{neg}}", MISC),
    ("{{[q, qq, both, tab, u]}}", MISC),
    ("{{ {'a': 1, 'b': [none, true, 1.5]} }}", MISC),
    ("{{ (1, 2)|list }} {{ [] }} {{ 'x' ~ 3 ~ none }}", MISC),
    # arithmetic, comparison, logic
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }}", MISC),
    ("{{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ 'a' in 'cat' }} {{ 2 not in xs }} {{ 1 == 1.0 }} {{ n != 7 }}", MISC),
    ("{{ none or 'fallback' }} {{ e and 'x' }} {{ n and words }} {{ not e }}", MISC),
    ("{{ 'yes' if t else 'no' }} {{ 'big' if n > 10 else 'small' }}", MISC),
    ("{{ -n }} {{ -f }} {{ +n }} {{ -n|abs }} {{ xs|sum }} {{ xs|min }} {{ xs|max }} {{ f|round }} {{ 3.5|round }}", MISC),
    # str methods
    ("[{{s.strip()}}] [{{s.lstrip()}}] [{{s.rstrip()}}] [{{s.strip(' !H')}}]", MISC),
    ("{{ s.split() }} {{ s.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ '  a  b '.split(None, 1) }}", MISC),
    ("{{ s.lower() }} {{ s.upper() }} {{ 'hELLO wORLD'.capitalize() }} {{ 'hello world'.title() }}", MISC),
    ("{{ u.lower() }} {{ u.upper() }} {{ u|length }} {{ u[1:4] }} {{ u[-1] }}", MISC),
    ("{{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 1) }} {{ s.find('o') }} {{ s.rfind('o') }} {{ s.count('l') }}", MISC),
    ("{{ s.startswith('  He') }} {{ s.endswith(('x', '  ')) }} {{ s.index('W') }} {{ '12'.isdigit() }} {{ ', '.join(words) }}", MISC),
    ("{{ words.index('b') }} {{ xs.count(1) }} {{ d.keys()|list }} {{ d.get('k') }} {{ d.get('zz', 0) }} {{ d['n'] }}", MISC),
    ("{% for k, v in d.items() %}{{k}}={{v}};{% endfor %}", MISC),
    # slices
    ("{{ words[::-1] }} {{ words[1:] }} {{ words[:-1] }} {{ s[2:7] }} {{ s[::2] }} {{ words[5:] }} {{ words[-10:1] }}", MISC),
    # filters
    ("{{ label|int + 1 }} {{ 'x'|int }} {{ '3.7'|int }} {{ '3.7'|float }} {{ n|string + '!' }} {{ 'ab'|list }} {{ xs|length }}", MISC),
    ("{{ s|trim }}|{{ s|lower }}|{{ s|upper }}|{{ 'hello'|capitalize }}|{{ xs|first }}|{{ xs|last }}|{{ xs|reverse|list }}", MISC),
    ("{{ missing|default('dflt') }} {{ e|default('empty', true) }} {{ xs|join(', ') }} {{ items|join('-', attribute='atext') }}", MISC),
    ("{{ words|map('upper')|list }} {{ 'one two  three'|wordcount }}", MISC),
    # tests
    ("{{ n is even }} {{ n is odd }} {{ none is none }} {{ s is string }} {{ n is number }} {{ missing is defined }} {{ n is divisibleby 7 }}", MISC),
    # for loop details
    ("{% for x in xs %}{{ loop.index }}/{{ loop.length }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %} {% endfor %}", MISC),
    ("{% for x in xs if x > 1 %}{{x}}{% else %}none{% endfor %}|{% for x in [] %}{{x}}{% else %}empty{% endfor %}", MISC),
    ("{% for x in words %}{% set y = x ~ '!' %}{{ y }}{% endfor %}", MISC),
    # whitespace control and comments, trailing newline kept
    ("a  {%- if t -%}  b  {%- endif -%}  c{# comment #}\n", MISC),
    ("{{- ' x ' -}}  \n  {{ n }}\n\n", MISC),
    ("{% if n > 100 %}a{% elif n > 5 %}b{% else %}c{% endif %}", MISC),
    ("{{ nl }}", MISC),
    ("line\r\nnext", MISC),
    ("{{ '\\u00e9\\x41\\t|' }}", MISC),
    # errors (StrictUndefined and Python exceptions)
    ("{{ missing }}", MISC),
    ("{{ d.nothing }}", MISC),
    ("{{ s + n }}", MISC),
    ("{{ words.index('z') }}", MISC),
    ("{{ xs[10] }}", MISC),
    ("{{ 1 // 0 }}", MISC),
    ("{% if missing %}x{% endif %}", MISC),
]


def main():
    out = []
    for tmpl, doc in CASES:
        case = {"template": tmpl, "vars": doc}
        try:
            text = env.from_string(tmpl).render(**doc)
            case["out"] = text
            try:
                lit = ast.literal_eval(text)
                if isinstance(lit, (list, dict, tuple)):
                    case["literal"] = json.loads(json.dumps(lit))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                pass
        except Exception as e:  # noqa: BLE001 - any jinja2 / Python error is an expected error
            case["error"] = True
            case["python_error"] = f"{type(e).__name__}: {e}"
        out.append(case)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "eval",
                        "jinja_goldens.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"jinja2": __import__("jinja2").__version__, "cases": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(out)} cases -> {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
