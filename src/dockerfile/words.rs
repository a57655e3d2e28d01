//! Words and variables in Dockerfile arguments: shell-form splitting (quotes, escapes) and
//! `$VAR` / `${VAR:-default}` expansion as BuildKit does it.

use std::collections::BTreeMap;

/// Split a shell-form string into words: whitespace separates, quotes group, `\` escapes.
/// Good enough for spotting commands and flags; not a shell.
pub fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None => match c {
                '"' | '\'' => {
                    quote = Some(c);
                    have = true;
                }
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                        have = true;
                    }
                }
                c if c.is_whitespace() => {
                    if have {
                        out.push(std::mem::take(&mut cur));
                        have = false;
                    }
                }
                c => {
                    cur.push(c);
                    have = true;
                }
            },
        }
    }
    if have {
        out.push(cur);
    }
    out
}

/// Expand `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`
/// with `vars`. Unknown variables expand to the empty string, as in BuildKit. `escape`
/// protects a following `$`.
pub fn expand(word: &str, vars: &BTreeMap<String, String>, escape: char) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut k = 0;
    expand_into(&chars, &mut k, vars, escape, None, &mut out);
    out
}

fn expand_into(
    chars: &[char],
    k: &mut usize,
    vars: &BTreeMap<String, String>,
    escape: char,
    stop: Option<char>,
    out: &mut String,
) {
    while *k < chars.len() {
        let c = chars[*k];
        if Some(c) == stop {
            return;
        }
        if c == escape && chars.get(*k + 1) == Some(&'$') {
            out.push('$');
            *k += 2;
            continue;
        }
        if c != '$' {
            out.push(c);
            *k += 1;
            continue;
        }
        *k += 1;
        match chars.get(*k) {
            Some('{') => {
                *k += 1;
                let start = *k;
                while *k < chars.len() && (chars[*k].is_ascii_alphanumeric() || chars[*k] == '_') {
                    *k += 1;
                }
                let name: String = chars[start..*k].iter().collect();
                let value = vars.get(&name).cloned();
                let colon = chars.get(*k) == Some(&':');
                if colon {
                    *k += 1;
                }
                match chars.get(*k) {
                    Some('}') => {
                        *k += 1;
                        out.push_str(value.as_deref().unwrap_or(""));
                    }
                    Some(&op) if op == '-' || op == '+' => {
                        *k += 1;
                        let mut word = String::new();
                        expand_into(chars, k, vars, escape, Some('}'), &mut word);
                        if *k < chars.len() {
                            *k += 1; // the closing brace
                        }
                        let set = match &value {
                            Some(v) => !(colon && v.is_empty()),
                            None => false,
                        };
                        match (op, set) {
                            ('-', true) | ('+', false) => {
                                if op == '-' {
                                    out.push_str(value.as_deref().unwrap_or(""));
                                }
                            }
                            _ => out.push_str(&word),
                        }
                    }
                    _ => {
                        // Unsupported modifier (`${VAR#x}` ...): keep it as written.
                        let mut depth = 1;
                        let begin = start.saturating_sub(2);
                        while *k < chars.len() && depth > 0 {
                            match chars[*k] {
                                '{' => depth += 1,
                                '}' => depth -= 1,
                                _ => {}
                            }
                            *k += 1;
                        }
                        out.extend(&chars[begin..*k]);
                    }
                }
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let start = *k;
                while *k < chars.len() && (chars[*k].is_ascii_alphanumeric() || chars[*k] == '_') {
                    *k += 1;
                }
                let name: String = chars[start..*k].iter().collect();
                out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
            }
            _ => out.push('$'),
        }
    }
}
