"""Instruction phrasings, written in the target language, several per kind.

A model tuned on one fixed instruction string learns the string, not the
request; LlamaTurk's data (a translated Alpaca) varies its wording freely.
``records.pick_phrasing`` picks one phrasing per example by (seed, input).
Placeholders: ``{text}`` (text to translate), ``{word}``, ``{name}`` and
``{section}`` (man pages), ``{context}`` (word senses).
"""

from __future__ import annotations

# English -> target language
TRANSLATE_FROM_EN: dict[str, tuple[str, ...]] = {
    "pl": (
        "Przetłumacz poniższy tekst z angielskiego na polski.\n\n{text}",
        "Przetłumacz na język polski:\n{text}",
        "Jak brzmi ten tekst po polsku?\n\n{text}",
        "Przełóż ten fragment z języka angielskiego na polski:\n{text}",
    ),
    "tr": (
        "Aşağıdaki metni İngilizceden Türkçeye çevir.\n\n{text}",
        "Türkçeye çevir:\n{text}",
        "Bu metnin Türkçesi nedir?\n\n{text}",
        "Şu İngilizce metni Türkçeye çevirir misin?\n{text}",
    ),
    "ru": (
        "Переведи следующий текст с английского на русский.\n\n{text}",
        "Переведи на русский язык:\n{text}",
        "Как это будет по-русски?\n\n{text}",
        "Переведи этот фрагмент с английского языка на русский:\n{text}",
    ),
}

# target language -> English (the instruction is still in the target language)
TRANSLATE_TO_EN: dict[str, tuple[str, ...]] = {
    "pl": (
        "Przetłumacz poniższy tekst z polskiego na angielski.\n\n{text}",
        "Przetłumacz na język angielski:\n{text}",
        "Jak brzmi ten tekst po angielsku?\n\n{text}",
        "Przełóż ten fragment z języka polskiego na angielski:\n{text}",
    ),
    "tr": (
        "Aşağıdaki metni Türkçeden İngilizceye çevir.\n\n{text}",
        "İngilizceye çevir:\n{text}",
        "Bu metnin İngilizcesi nedir?\n\n{text}",
        "Şu Türkçe metni İngilizceye çevirir misin?\n{text}",
    ),
    "ru": (
        "Переведи следующий текст с русского на английский.\n\n{text}",
        "Переведи на английский язык:\n{text}",
        "Как это будет по-английски?\n\n{text}",
        "Переведи этот фрагмент с русского языка на английский:\n{text}",
    ),
}

DEFINE_WORD: dict[str, tuple[str, ...]] = {
    "tr": (
        "\"{word}\" kelimesinin anlamı nedir?",
        "{word} ne demek?",
        "\"{word}\" sözcüğünü tanımla.",
        "Türkçede \"{word}\" ne anlama gelir?",
    ),
}

# man-page sections 1, 6 and 8: commands
COMMAND: dict[str, tuple[str, ...]] = {
    "pl": (
        "Co robi polecenie {name}?",
        "Do czego służy polecenie {name}?",
        "Wyjaśnij krótko, co robi program {name}.",
        "Jakie jest zadanie polecenia „{name}”?",
    ),
    "tr": (
        "{name} komutu ne işe yarar?",
        "{name} komutu ne yapar?",
        "\"{name}\" programının görevi nedir? Kısaca açıkla.",
        "Linux'ta {name} komutu ne için kullanılır?",
    ),
    "ru": (
        "Что делает команда {name}?",
        "Для чего нужна команда {name}?",
        "Кратко объясни, что делает программа {name}.",
        "Каково назначение команды «{name}»?",
    ),
}

# other sections (files, devices, system calls, overviews): what the page describes
MAN_PAGE: dict[str, tuple[str, ...]] = {
    "pl": (
        "Co opisuje strona podręcznika man {name}({section})?",
        "Czym jest {name} (podręcznik systemowy, sekcja {section})?",
        "Wyjaśnij krótko, czego dotyczy strona man {name}({section}).",
    ),
    "tr": (
        "{name}({section}) kılavuz sayfası neyi anlatır?",
        "Kılavuz sayfalarının {section}. bölümündeki {name} nedir?",
        "{name}({section}) kılavuz sayfasının konusunu kısaca açıkla.",
    ),
    "ru": (
        "Что описывает страница руководства man {name}({section})?",
        "Что такое {name} (справочное руководство, раздел {section})?",
        "Кратко объясни, чему посвящена страница man {name}({section}).",
    ),
}

WORD_SENSE: dict[str, tuple[str, ...]] = {
    "ru": (
        "{context}\n\nЧто означает слово «{word}» в этом тексте?",
        "Прочитай отрывок:\n{context}\n\nВ каком значении здесь употреблено слово «{word}»?",
        "Объясни значение слова «{word}» в следующем контексте.\n\n{context}",
        "Текст: {context}\nКакой смысл имеет слово «{word}» в этом тексте?",
    ),
}
