"""Writes english.txt: public-domain English sentences for `attnscope heads`.

Two parts, both free of copyright: passages of public-domain texts written out here (the
Gettysburg Address, the opening of the Declaration of Independence, King James Genesis 1,
opening lines of 19th-century novels), and sentences composed by a small grammar with a fixed
seed (subjects, verbs, objects, clauses, questions, quotations, numbers and punctuation), so
that the corpus has the variety of sentence shapes attention heads react to. Deterministic:
running it again gives the same file byte for byte.

    python3 data/corpus/make_corpus.py            # writes data/corpus/english.txt
"""
import os
import random

PASSAGES = """\
Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty, and dedicated to the proposition that all men are created equal.
Now we are engaged in a great civil war, testing whether that nation, or any nation so conceived and so dedicated, can long endure.
We are met on a great battle-field of that war.
We have come to dedicate a portion of that field, as a final resting place for those who here gave their lives that that nation might live.
It is altogether fitting and proper that we should do this.
But, in a larger sense, we can not dedicate, we can not consecrate, we can not hallow this ground.
The world will little note, nor long remember what we say here, but it can never forget what they did here.
When in the Course of human events, it becomes necessary for one people to dissolve the political bands which have connected them with another, they should declare the causes which impel them to the separation.
We hold these truths to be self-evident, that all men are created equal, that they are endowed by their Creator with certain unalienable Rights, that among these are Life, Liberty and the pursuit of Happiness.
In the beginning God created the heaven and the earth.
And the earth was without form, and void; and darkness was upon the face of the deep.
And the Spirit of God moved upon the face of the waters.
And God said, Let there be light: and there was light.
And God saw the light, that it was good: and God divided the light from the darkness.
And God called the light Day, and the darkness he called Night.
And the evening and the morning were the first day.
It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.
Call me Ishmael.
Some years ago, never mind how long precisely, having little or no money in my purse, I thought I would sail about a little and see the watery part of the world.
It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.
Happy families are all alike; every unhappy family is unhappy in its own way.
Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do.
Marley was dead: to begin with.
There was no possibility of taking a walk that day.
Whether I shall turn out to be the hero of my own life, or whether that station will be held by anybody else, these pages must show.
The sun shone, having no alternative, on the nothing new.
In my younger and more vulnerable years my father gave me some advice.
The boy stood on the burning deck, whence all but he had fled.
Tyger Tyger, burning bright, in the forests of the night.
I wandered lonely as a cloud that floats on high o'er vales and hills.
Shall I compare thee to a summer's day?
Thou art more lovely and more temperate.
To be, or not to be, that is the question.
All the world's a stage, and all the men and women merely players.
Friends, Romans, countrymen, lend me your ears; I come to bury Caesar, not to praise him.
Because I could not stop for Death, he kindly stopped for me.
Hope is the thing with feathers that perches in the soul.
Once upon a midnight dreary, while I pondered, weak and weary.
"""

NAMES = ["Alice", "the old captain", "my neighbour", "the young doctor", "a tired farmer",
         "the teacher", "Elizabeth", "the miller's son", "our guide", "the stranger",
         "the committee", "a little girl", "the sailors", "Mr. Darcy", "the clerk", "her brother",
         "the king", "a poor widow", "the soldiers", "John"]
NOUNS = ["letter", "river", "garden", "house", "horse", "window", "bridge", "lamp", "book",
         "ship", "road", "village", "mountain", "candle", "bell", "coat", "door", "field",
         "storm", "song", "forest", "market", "school", "table", "clock", "harbour", "church",
         "map", "basket", "key"]
ADJ = ["old", "quiet", "broken", "bright", "narrow", "distant", "small", "heavy", "green",
       "cold", "golden", "empty", "strange", "ancient", "wet", "crowded", "silent", "red"]
VERBS_T = ["found", "opened", "carried", "watched", "painted", "repaired", "sold", "read",
           "closed", "remembered", "crossed", "described", "lost", "built", "cleaned", "followed"]
VERBS_I = ["slept", "laughed", "waited", "disappeared", "returned", "arrived", "wept", "sang",
           "hesitated", "smiled", "trembled", "listened"]
ADV = ["slowly", "quickly", "at last", "again", "carefully", "in silence", "before dawn",
       "after dinner", "without a word", "that evening", "every morning", "by chance"]
PLACES = ["in the village", "near the river", "on the hill", "under the bridge", "at the market",
          "beside the church", "in the garden", "across the field", "by the harbour",
          "behind the school"]
CONJ = ["because", "although", "when", "while", "after", "before", "since", "until"]
SAY = ["said", "asked", "replied", "whispered", "cried", "answered"]
QUOTES = ["Where are you going?", "It is late.", "Come here at once!", "I do not know.",
          "What a fine day it is!", "Have you seen my brother?", "We must leave tonight.",
          "Nobody will believe us.", "Is the door locked?", "Thank you, sir."]
NUMBERS = ["two", "three", "seven", "twelve", "forty", "a hundred", "1848", "1905", "ten"]


def np_(rng):
    r = rng.random()
    if r < 0.3:
        return rng.choice(NAMES)
    det = rng.choice(["the", "a", "that", "every", "her", "his", "our"])
    if rng.random() < 0.5:
        return f"{det} {rng.choice(ADJ)} {rng.choice(NOUNS)}"
    return f"{det} {rng.choice(NOUNS)}"


def clause(rng):
    if rng.random() < 0.6:
        s = f"{np_(rng)} {rng.choice(VERBS_T)} {np_(rng)}"
    else:
        s = f"{np_(rng)} {rng.choice(VERBS_I)}"
    if rng.random() < 0.4:
        s += f" {rng.choice(PLACES)}"
    if rng.random() < 0.3:
        s += f" {rng.choice(ADV)}"
    return s


def cap(s):
    return s[0].upper() + s[1:]


def sentence(rng):
    r = rng.random()
    if r < 0.30:
        return cap(clause(rng)) + "."
    if r < 0.50:
        return cap(clause(rng)) + f", {rng.choice(CONJ)} {clause(rng)}."
    if r < 0.60:
        return cap(rng.choice(CONJ)) + f" {clause(rng)}, {clause(rng)}."
    if r < 0.70:
        return f'"{rng.choice(QUOTES)}" {rng.choice(SAY)} {np_(rng)}.'
    if r < 0.78:
        return (f"In {rng.choice(NUMBERS[6:8])}, {np_(rng)} {rng.choice(VERBS_T)} "
                f"{rng.choice(NUMBERS[:6])} {rng.choice(NOUNS)}s {rng.choice(PLACES)}.")
    if r < 0.86:
        aux = rng.choice(["Did", "Why did", "When did", "Where did"])
        v = rng.choice(["find", "open", "carry", "watch", "sell", "read", "cross", "build"])
        return f"{aux} {np_(rng)} {v} {np_(rng)}?"
    if r < 0.93:
        return cap(clause(rng)) + f"; {clause(rng)}, and {clause(rng)}."
    return cap(clause(rng)) + f" (or so {np_(rng)} {rng.choice(SAY)})."


def main():
    rng = random.Random(20191105)
    lines = [l for l in PASSAGES.splitlines() if l.strip()]
    seen = set(lines)
    while len(lines) < 1200:
        s = sentence(rng)
        if s not in seen:
            seen.add(s)
            lines.append(s)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "english.txt")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{out}: {len(lines)} sentences")


if __name__ == "__main__":
    main()
