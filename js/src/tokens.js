// Token classification in JavaScript (issue 45): the words of a text with their offsets, the token ids the
// Python runtime feeds (checked equal), and each text's entities from the deciding head's tag logits, grouped
// as runtime/entities.py groups them. The JS tokenizer gives no offsets or word ids, so the words are found
// here the way a BERT-style pre-tokenizer finds them (whitespace between words, every punctuation mark and CJK
// character a word of its own), each word is tokenized alone, and the pieces are checked to be the ids the
// tokenizer gives the whole text: where they differ this runtime refuses rather than misplace a tag.

import { BundleError, softmax } from './core.js';

const PUNCTUATION = /[\p{P}!-/:-@[-`{-~]/u; // Unicode punctuation and every ASCII punctuation mark or symbol
const CONTROL = /[\p{Cc}\p{Cf}]/u;
const SPACE = /\s/u;

function isCjk(code) {
  return (code >= 0x4e00 && code <= 0x9fff) || (code >= 0x3400 && code <= 0x4dbf) ||
    (code >= 0x20000 && code <= 0x2a6df) || (code >= 0x2a700 && code <= 0x2b73f) ||
    (code >= 0x2b740 && code <= 0x2b81f) || (code >= 0x2b820 && code <= 0x2ceaf) ||
    (code >= 0xf900 && code <= 0xfaff) || (code >= 0x2f800 && code <= 0x2fa1f);
}

/** The words of `text` as [start, end) offsets into it (UTF-16 units: text.slice(start, end) is the word). */
export function wordSpans(text) {
  const spans = [];
  let start = -1;
  const close = (at) => {
    if (start >= 0) spans.push([start, at]);
    start = -1;
  };
  for (let i = 0; i < text.length;) {
    const code = text.codePointAt(i);
    const char = String.fromCodePoint(code);
    const next = i + char.length;
    if (SPACE.test(char)) {
      close(i);
    } else if (CONTROL.test(char)) {
      // the normalizer deletes it: it neither ends a word nor starts one
    } else if (PUNCTUATION.test(char) || isCjk(code)) {
      close(i);
      spans.push([i, next]);
    } else if (start < 0) {
      start = i;
    }
    i = next;
  }
  close(text.length);
  return spans;
}

/**
 * A single text as the Python runtime feeds it (`encoder.ids(text)`), with the words whose tags are read: each
 * word's offsets and the index of its first sub-token. Words cut off by max_length are left out, as Python's
 * encoding leaves them out.
 */
export function encodeWords(encoder, text) {
  const ids = encoder.ids(text);
  const pieces = [];
  const firsts = [];
  const spans = [];
  for (const [start, end] of wordSpans(text)) {
    const wordIds = encoder.tokenizer.encode(text.slice(start, end), { add_special_tokens: false }).ids;
    if (!wordIds.length) continue; // a word the normalizer removes entirely
    firsts.push(encoder.prefix.length + pieces.length);
    spans.push([start, end]);
    pieces.push(...wordIds);
  }
  const content = ids.slice(encoder.prefix.length, ids.length - encoder.suffix.length);
  if (content.some((id, i) => id !== pieces[i])) {
    throw new BundleError('this tokenizer splits words in a way the JavaScript runtime cannot align with its ' +
      'tags (the words tokenized one by one differ from the whole text); use the Python runtime for this bundle');
  }
  const kept = firsts.filter((first) => first < encoder.prefix.length + content.length).length;
  return { ids, firsts: firsts.slice(0, kept), spans: spans.slice(0, kept) };
}

function splitTag(tag) {
  if (tag === 'O') return ['O', null];
  if (tag.length > 2 && tag[1] === '-' && (tag[0] === 'B' || tag[0] === 'I')) return [tag[0], tag.slice(2)];
  return ['I', tag];
}

/** The tags with every entity starting at a B- tag, as seqeval's lenient reading groups them. */
export function repair(tags) {
  let open = null;
  return tags.map((tag) => {
    const [prefix, kind] = splitTag(tag);
    if (prefix === 'O') {
      open = null;
      return 'O';
    }
    if (prefix === 'B' || kind !== open) {
      open = kind;
      return `B-${kind}`;
    }
    return `I-${kind}`;
  });
}

/**
 * One text's answer from its deciding head's tag logits (`logits(token) -> C numbers`): `entities`
 * ({entity_group, score, word, start, end}, the mean of its words' tag probabilities) and with `words` every
 * word's {word, start, end, tag, score}.
 */
export function tagAnswer(text, encoded, logits, labels, words = false) {
  const tags = [];
  const scores = [];
  for (const first of encoded.firsts) {
    const probs = softmax(logits(first));
    let best = 0;
    probs.forEach((p, c) => { if (p > probs[best]) best = c; });
    tags.push(labels[best]);
    scores.push(probs[best]);
  }
  const fixed = repair(tags);
  const entities = [];
  let group = [];
  let kind = null;
  const close = () => {
    if (!group.length) return;
    const start = encoded.spans[group[0]][0];
    const end = encoded.spans[group[group.length - 1]][1];
    const score = group.reduce((sum, i) => sum + scores[i], 0) / group.length;
    entities.push({ entity_group: kind, score, word: text.slice(start, end), start, end });
  };
  fixed.forEach((tag, i) => {
    const [prefix, type] = splitTag(tag);
    if (prefix !== 'I') {
      close();
      [group, kind] = prefix === 'B' ? [[i], type] : [[], null];
    } else {
      group.push(i);
    }
  });
  close();
  const answer = { entities };
  if (words) {
    answer.words = encoded.spans.map(([start, end], i) => ({ word: text.slice(start, end), start, end, tag: fixed[i],
      score: scores[i] }));
  }
  return answer;
}
