"""Instruction data for LlamaTurk-style instruction tuning (stage 05).

Examples are chat turns in TRL's conversational prompt-completion format
(``records``), made from the packaged data in the target language
(``builders``: translation both ways, Turkish WordNet definitions, man-page
NAME lines, Russian word senses) and from translated Alpaca-style sets
(``hub``: ``hf:OWNER/NAME[:CONFIG]``, ``local:PATH``). ``dataset`` filters them
(corpus-train groups only, no benchmark item's text), deduplicates, splits and
saves them under ``artifacts_dir()/instructions/<language>/<tag>/``.

    from lib.instructions import build_instructions, load_instructions
    build_instructions("tr", sources=["packaged", "local:alpaca_tr.jsonl"])
    load_instructions("tr")["train"][0]["prompt"]   # [{"role": "user", "content": ...}]

    builders.py   packaged-data builders and the BUILDERS registry
    templates.py  instruction phrasings in Polish, Turkish and Russian
    hub.py        Alpaca-style and chat sets from the hub or local files
    leaks.py      the filter against benchmark items' text
    dataset.py    dedupe, cap, split, save/load, manifest
    records.py    the example record, normalisation, errors
"""

from lib.instructions.builders import (
    BUILDERS,
    Builder,
    builder_names,
    definition_examples,
    manpage_examples,
    name_line,
    sense_gloss,
    translation_examples,
    word_sense_examples,
)
from lib.instructions.dataset import (
    build_instructions,
    deduplicate,
    instruction_split,
    instructions_path,
    load_instructions,
    load_instructions_manifest,
    resolve_sources,
)
from lib.instructions.hub import load_instruction_set
from lib.instructions.leaks import LeakFilter, held_out_texts, leak_filter
from lib.instructions.records import (
    LANGUAGES,
    Example,
    InstructionDataError,
    InstructionsNotBuiltError,
    make_example,
    normalise,
)

__all__ = [
    "BUILDERS", "LANGUAGES", "Builder", "Example", "InstructionDataError", "InstructionsNotBuiltError",
    "LeakFilter", "build_instructions", "builder_names", "deduplicate", "definition_examples", "held_out_texts",
    "instruction_split", "instructions_path", "leak_filter", "load_instruction_set", "load_instructions",
    "load_instructions_manifest", "make_example", "manpage_examples", "name_line", "normalise", "resolve_sources",
    "sense_gloss", "translation_examples", "word_sense_examples"
]
