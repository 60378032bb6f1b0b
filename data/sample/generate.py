"""Compose the English->Chinese sample corpus (en-zh.tsv) from a small bilingual grammar and lexicon.

Run `python data/sample/generate.py` to rewrite en-zh.tsv; the output is deterministic.
"""

from __future__ import annotations

import random
from pathlib import Path

PEOPLE = [
    ("Li Ming", "李明"),
    ("Wang Fang", "王芳"),
    ("Zhang Wei", "张伟"),
    ("Liu Yang", "刘洋"),
    ("Chen Jing", "陈静"),
    ("Tom", "汤姆"),
    ("Mary", "玛丽"),
    ("Anna", "安娜"),
]
# (english, chinese, third person singular?)
SUBJECTS = [(en, zh, True) for en, zh in PEOPLE] + [
    ("I", "我", False),
    ("you", "你", False),
    ("he", "他", True),
    ("she", "她", True),
    ("we", "我们", False),
    ("they", "他们", False),
    ("my friend", "我的朋友", True),
    ("the teacher", "老师", True),
    ("the student", "学生", True),
    ("the doctor", "医生", True),
    ("my mother", "我妈妈", True),
    ("my father", "我爸爸", True),
    ("the child", "孩子", True),
    ("my brother", "我哥哥", True),
    ("my sister", "我姐姐", True),
    ("the students", "学生们", False),
    ("our teacher", "我们的老师", True),
]
# verb (base, 3rd person), chinese, objects
VERBS = [
    (
        ("eat", "eats"),
        "吃",
        [
            ("apples", "苹果"),
            ("rice", "米饭"),
            ("noodles", "面条"),
            ("bread", "面包"),
            ("fish", "鱼"),
            ("vegetables", "蔬菜"),
        ],
    ),
    (
        ("drink", "drinks"),
        "喝",
        [("tea", "茶"), ("coffee", "咖啡"), ("water", "水"), ("milk", "牛奶"), ("juice", "果汁")],
    ),
    (("read", "reads"), "看", [("books", "书"), ("newspapers", "报纸"), ("the letter", "那封信")]),
    (("watch", "watches"), "看", [("movies", "电影"), ("TV", "电视"), ("the game", "比赛")]),
    (
        ("learn", "learns"),
        "学",
        [("Chinese", "中文"), ("English", "英语"), ("math", "数学"), ("music", "音乐"), ("history", "历史")],
    ),
    (("write", "writes"), "写", [("letters", "信"), ("Chinese characters", "汉字"), ("stories", "故事")]),
    (("buy", "buys"), "买", [("flowers", "花"), ("clothes", "衣服"), ("fruit", "水果"), ("tickets", "票")]),
    (
        ("like", "likes"),
        "喜欢",
        [
            ("music", "音乐"),
            ("cats", "猫"),
            ("dogs", "狗"),
            ("the city", "这个城市"),
            ("summer", "夏天"),
            ("winter", "冬天"),
        ],
    ),
]
TIMES = [
    ("every day", "每天"),
    ("today", "今天"),
    ("in the morning", "早上"),
    ("in the evening", "晚上"),
    ("on Sunday", "星期天"),
    ("every week", "每个星期"),
    ("now", "现在"),
]
PLACES = [
    ("at home", "在家"),
    ("at school", "在学校"),
    ("in the library", "在图书馆"),
    ("in the park", "在公园"),
    ("in the restaurant", "在饭馆"),
    ("in Beijing", "在北京"),
    ("in the office", "在办公室"),
]
THINGS = [
    ("the cat", "猫"),
    ("the dog", "狗"),
    ("the city", "这个城市"),
    ("the room", "房间"),
    ("the weather", "天气"),
    ("the world", "世界"),
    ("the house", "房子"),
    ("the tea", "茶"),
    ("the book", "这本书"),
    ("the car", "车"),
]
ADJECTIVES = [
    ("big", "大"),
    ("small", "小"),
    ("beautiful", "漂亮"),
    ("good", "好"),
    ("hot", "热"),
    ("cold", "冷"),
    ("new", "新"),
    ("old", "旧"),
    ("expensive", "贵"),
    ("clean", "干净"),
]
PEOPLE_ADJECTIVES = [("happy", "高兴"), ("busy", "忙"), ("tired", "累"), ("hungry", "饿"), ("tall", "高")]
# singular, plural, chinese, measure word
COUNTABLE = [
    ("cat", "cats", "猫", "只"),
    ("dog", "dogs", "狗", "只"),
    ("book", "books", "书", "本"),
    ("car", "cars", "车", "辆"),
    ("friend", "friends", "朋友", "个"),
    ("apple", "apples", "苹果", "个"),
    ("pen", "pens", "笔", "支"),
    ("ticket", "tickets", "票", "张"),
    ("house", "houses", "房子", "座"),
]
NUMBERS = [
    ("one", "一"),
    ("two", "两"),
    ("three", "三"),
    ("four", "四"),
    ("five", "五"),
    ("six", "六"),
    ("seven", "七"),
    ("eight", "八"),
    ("nine", "九"),
    ("ten", "十"),
]
NAMES = [
    ("world", "世界"),
    ("teacher", "老师"),
    ("everyone", "大家"),
    ("friend", "朋友"),
    ("doctor", "医生"),
    ("mother", "妈妈"),
    ("father", "爸爸"),
    ("Beijing", "北京"),
    ("China", "中国"),
    ("children", "孩子们"),
    *PEOPLE,
]
GREETINGS = [
    ("Hello", "你好"),
    ("Hi", "你好"),
    ("Goodbye", "再见"),
    ("Thank you", "谢谢你"),
    ("Good morning", "早上好"),
    ("Good evening", "晚上好"),
    ("Good night", "晚安"),
    ("Welcome", "欢迎"),
]


def cap(text: str) -> str:
    return text[0].upper() + text[1:]


def be(subject: tuple[str, str, bool]) -> str:
    return "am" if subject[0] == "I" else "is" if subject[2] else "are"


def sentence(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(
        [
            "svo",
            "svo",
            "time",
            "place",
            "neg",
            "question",
            "like_to",
            "adj",
            "adj_neg",
            "adj_q",
            "person_adj",
            "have",
            "where",
            "greeting",
            "greeting",
            "greeting",
        ]
    )
    s_en, s_zh, third = subj = rng.choice(SUBJECTS)
    (base, v3), v_zh, objects = rng.choice(VERBS)
    verb = v3 if third else base
    o_en, o_zh = rng.choice(objects)
    if kind == "svo":
        return f"{cap(s_en)} {verb} {o_en}.", f"{s_zh}{v_zh}{o_zh}。"
    if kind == "time":
        t_en, t_zh = rng.choice(TIMES)
        return f"{cap(s_en)} {verb} {o_en} {t_en}.", f"{s_zh}{t_zh}{v_zh}{o_zh}。"
    if kind == "place":
        p_en, p_zh = rng.choice(PLACES)
        return f"{cap(s_en)} {verb} {o_en} {p_en}.", f"{s_zh}{p_zh}{v_zh}{o_zh}。"
    if kind == "neg":
        aux = "does not" if third else "do not"
        return f"{cap(s_en)} {aux} {base} {o_en}.", f"{s_zh}不{v_zh}{o_zh}。"
    if kind == "question":
        aux = "Does" if third else "Do"
        return f"{aux} {s_en} {base} {o_en}?", f"{s_zh}{v_zh}{o_zh}吗？"
    if kind == "like_to":
        likes = "likes" if third else "like"
        return f"{cap(s_en)} {likes} to {base} {o_en}.", f"{s_zh}喜欢{v_zh}{o_zh}。"
    a_en, a_zh = rng.choice(ADJECTIVES)
    t_en, t_zh = rng.choice(THINGS)
    if kind == "adj":
        return f"{cap(t_en)} is very {a_en}.", f"{t_zh}很{a_zh}。"
    if kind == "adj_neg":
        return f"{cap(t_en)} is not {a_en}.", f"{t_zh}不{a_zh}。"
    if kind == "adj_q":
        return f"Is {t_en} {a_en}?", f"{t_zh}{a_zh}吗？"
    if kind == "person_adj":
        pa_en, pa_zh = rng.choice(PEOPLE_ADJECTIVES)
        return f"{cap(s_en)} {be(subj)} {pa_en}.", f"{s_zh}很{pa_zh}。"
    if kind == "have":
        n_en, n_zh = rng.choice(NUMBERS)
        sing, plural, c_zh, measure = rng.choice(COUNTABLE)
        has = "has" if third else "have"
        return (
            f"{cap(s_en)} {has} {n_en} {sing if n_en == 'one' else plural}.",
            f"{s_zh}有{n_zh}{measure}{c_zh}。",
        )
    if kind == "where":
        p_en, p_zh = rng.choice(PLACES)
        return f"{cap(s_en)} {be(subj)} {p_en}.", f"{s_zh}{p_zh}。"
    g_en, g_zh = rng.choice(GREETINGS)
    name_en, name_zh = rng.choice(NAMES)
    return f"{g_en}, {name_en}.", f"{g_zh}，{name_zh}。"


def generate(n: int, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = {("Hello, world.", "你好，世界。"): None}
    while len(pairs) < n:
        pairs[sentence(rng)] = None
    return list(pairs)


if __name__ == "__main__":
    out = Path(__file__).with_name("en-zh.tsv")
    out.write_text("".join(f"{en}\t{zh}\n" for en, zh in generate(4000)), encoding="utf-8")
    print(f"wrote {out}")
