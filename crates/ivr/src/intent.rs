//! From what the caller said to an intent: the words of each example phrase against the
//! words of the utterance, and spoken digits to digits.

use std::collections::BTreeMap;

use crate::model::Intent;

/// Words that carry no intent.
const FILLER: &[&str] = &[
    "a", "an", "the", "i", "i'd", "to", "my", "me", "please", "want", "would", "like", "can",
    "you", "is", "it", "of", "um", "uh", "and", "for", "do", "need",
];

/// Lower-case words of `text`, without punctuation.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn content(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !FILLER.contains(&w.as_str()))
        .collect()
}

/// The best-matching intent and its score (0..1): for each example, the share of its content
/// words the utterance contains; an intent scores its best example. A tie between two intents
/// is no match.
pub fn classify<'a>(
    intents: &'a BTreeMap<String, Intent>,
    utterance: &str,
) -> Option<(&'a str, f32)> {
    let said = content(utterance);
    if said.is_empty() {
        return None;
    }
    let mut best: Option<(&str, f32)> = None;
    let mut tie = false;
    for (name, intent) in intents {
        let score = intent
            .examples
            .iter()
            .map(|ex| {
                let want = content(ex);
                if want.is_empty() {
                    return 0.0;
                }
                want.iter().filter(|w| said.contains(w)).count() as f32 / want.len() as f32
            })
            .fold(0.0, f32::max);
        match best {
            Some((_, b)) if (score - b).abs() < f32::EPSILON && score > 0.0 => tie = true,
            Some((_, b)) if score < b => {}
            _ => {
                tie = false;
                best = Some((name, score));
            }
        }
    }
    best.filter(|(_, s)| *s > 0.0 && !tie)
}

/// Digits spoken as words ("one two three four" → "1234"); `None` if any word is not a digit.
pub fn spoken_digits(utterance: &str) -> Option<String> {
    const NAMES: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let ws = words(utterance);
    if ws.is_empty() {
        return None;
    }
    ws.iter()
        .map(|w| {
            NAMES
                .iter()
                .position(|n| n == w)
                .map(|d| char::from(b'0' + d as u8))
                .or_else(|| {
                    (w.len() == 1)
                        .then(|| w.chars().next())
                        .flatten()
                        .filter(char::is_ascii_digit)
                })
        })
        .collect()
}

/// Whether an utterance is a yes (`Some(true)`), a no (`Some(false)`), or neither.
pub fn yes_no(utterance: &str) -> Option<bool> {
    let ws = words(utterance);
    if ws
        .iter()
        .any(|w| matches!(w.as_str(), "yes" | "yeah" | "correct" | "right" | "yep"))
    {
        Some(true)
    } else if ws
        .iter()
        .any(|w| matches!(w.as_str(), "no" | "nope" | "wrong"))
    {
        Some(false)
    } else {
        None
    }
}
