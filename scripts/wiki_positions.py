"""The positions the bf16 agreement checks score: the first n tokens of the wiki.test.raw stream
under ref-17m's MANIFEST protocol (documents split at blank lines, over-long ones at lines, each
as BOS + ids + EOS). Shared by scripts/bf16_agreement.py and scripts/bf16_logits_share.py."""
import sentencepiece as spm


def wiki_stream(shared, n):
    d = f"{shared}/models/ref-17m"
    sp = spm.SentencePieceProcessor(model_file=f"{d}/tokenizer.model")
    text = open(f"{shared}/data/text/wikitext2/wiki.test.raw", encoding="utf-8").read()
    docs = []
    for piece in text.split("\n\n"):  # MANIFEST protocol (docs/cli.md, "paragraphs")
        docs += piece.split("\n") if len(piece) > 20000 else [piece]
    stream = []
    for doc in docs:
        if doc.strip():
            stream += [1] + sp.encode(doc) + [2]
        if len(stream) >= n:
            break
    return stream[:n]
