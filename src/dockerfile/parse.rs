//! A Dockerfile parser that follows BuildKit's rules (parser directives, escape character,
//! line continuations, comments inside continuations, heredocs, JSON and shell forms, flags)
//! and never panics: what it cannot make sense of becomes a [`ParseError`] with a line number,
//! and parsing goes on with the next instruction.

use std::collections::BTreeMap;

pub use super::words::{expand, split_words};

/// A parsed Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct Dockerfile {
    /// Parser directives from the top of the file (`syntax`, `escape`, `check`), lowercased keys.
    pub directives: BTreeMap<String, String>,
    /// The escape character: `\` unless `# escape=` says otherwise.
    pub escape: char,
    /// Instructions in file order.
    pub instructions: Vec<Instruction>,
    /// Comment lines (1-based line, text after `#`, trimmed), directives excluded.
    pub comments: Vec<(usize, String)>,
    /// Problems found; the instruction they concern is skipped or kept as well as possible.
    pub errors: Vec<ParseError>,
}

/// A syntax problem at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// One instruction, continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line of the keyword.
    pub line: usize,
    /// 1-based last line, heredoc bodies included.
    pub end_line: usize,
    /// The keyword, uppercased (`RUN`, `COPY`, ...).
    pub keyword: String,
    /// Leading `--name[=value]` flags, in order.
    pub flags: Vec<Flag>,
    /// The arguments after the flags.
    pub args: Args,
    /// Heredoc bodies, in the order their markers appear.
    pub heredocs: Vec<Heredoc>,
}

/// A `--name` or `--name=value` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

/// Exec (JSON) form or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// `["/app", "--serve"]`.
    Exec(Vec<String>),
    /// Everything else, as written (continuations joined, comment lines dropped).
    Shell(String),
}

/// A heredoc (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word.
    pub name: String,
    /// `<<-`: leading tabs stripped from body lines and the terminator.
    pub strip_tabs: bool,
    /// Quoted delimiter: the body is not expanded.
    pub quoted: bool,
    /// The body, lines joined with `\n` (with a trailing `\n`).
    pub body: String,
}

impl Instruction {
    /// The value of flag `--name` (the last one if repeated); `Some("")` for a bare flag.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// All values of a repeatable flag (`--mount`).
    pub fn flag_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.flags
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// The arguments as one string (exec form joined with spaces), heredoc bodies appended.
    pub fn text(&self) -> String {
        let mut s = match &self.args {
            Args::Exec(v) => v.join(" "),
            Args::Shell(s) => s.clone(),
        };
        for h in &self.heredocs {
            s.push('\n');
            s.push_str(&h.body);
        }
        s
    }

    /// Whitespace-separated words of the shell form (quotes removed), or the exec form's items.
    pub fn words(&self) -> Vec<String> {
        match &self.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => split_words(s),
        }
    }

    pub fn is_exec_form(&self) -> bool {
        matches!(self.args, Args::Exec(_))
    }
}

/// Keywords BuildKit knows; others are reported.
pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Instructions whose arguments may be written in JSON form.
const JSON_FORM: &[&str] = &["ADD", "CMD", "COPY", "ENTRYPOINT", "RUN", "SHELL", "VOLUME"];

/// Instructions that may carry heredocs.
const HEREDOC: &[&str] = &["ADD", "COPY", "RUN"];

fn is_directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (key, value) = rest.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.trim().to_string()))
}

/// The physical line ends with the escape character (trailing blanks allowed): strip it.
fn continued(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end_matches([' ', '\t']);
    t.strip_suffix(escape)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Parse a Dockerfile. Never fails and never panics: problems are in `errors`.
pub fn parse(text: &str) -> Dockerfile {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut df = Dockerfile {
        escape: '\\',
        ..Default::default()
    };
    let mut i = read_directives(&lines, &mut df);
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            i += 1;
            continue;
        }
        if is_comment(line) {
            let t = line.trim_start().trim_start_matches('#').trim();
            df.comments.push((i + 1, t.to_string()));
            i += 1;
            continue;
        }
        let start = i;
        let logical = logical_line(&lines, &mut i, df.escape, &mut df.comments);
        let end_of_line = i; // index of the line after the instruction
        let logical = logical.trim();
        let (kw, rest) = match logical.find(|c: char| c.is_whitespace()) {
            Some(p) => (&logical[..p], logical[p..].trim_start()),
            None => (logical, ""),
        };
        let keyword = kw.to_ascii_uppercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            df.errors.push(ParseError {
                line: start + 1,
                message: format!("unknown instruction `{kw}`"),
            });
            continue;
        }
        let (flags, rest) = parse_flags(rest);
        let args = if JSON_FORM.contains(&keyword.as_str()) && rest.trim_start().starts_with('[') {
            match serde_json::from_str::<Vec<String>>(rest.trim()) {
                Ok(v) => Args::Exec(v),
                // Not valid JSON: BuildKit runs it as a shell command.
                Err(_) => Args::Shell(rest.to_string()),
            }
        } else {
            Args::Shell(rest.to_string())
        };
        let mut instr = Instruction {
            line: start + 1,
            end_line: end_of_line,
            keyword,
            flags,
            args,
            heredocs: Vec::new(),
        };
        if HEREDOC.contains(&instr.keyword.as_str()) {
            read_heredocs(&lines, &mut i, &mut instr, &mut df.errors);
        }
        df.instructions.push(instr);
    }
    df
}

/// Parser directives: only at the very top, before any blank line, comment or instruction.
/// Returns the index of the first line after them.
fn read_directives(lines: &[&str], df: &mut Dockerfile) -> usize {
    let mut i = 0;
    while i < lines.len() {
        match is_directive(lines[i]) {
            Some((k, v)) if !df.directives.contains_key(&k) => {
                if k == "escape" {
                    match v.as_str() {
                        "\\" => df.escape = '\\',
                        "`" => df.escape = '`',
                        _ => df.errors.push(ParseError {
                            line: i + 1,
                            message: format!("invalid escape directive `{v}`: use \\ or `"),
                        }),
                    }
                }
                df.directives.insert(k, v);
                i += 1;
            }
            _ => break,
        }
    }
    i
}

/// The logical line starting at `lines[*i]`, continuation lines joined; `*i` moves past
/// it. Comment lines inside a continuation are dropped (kept in `comments`), as are blank
/// lines (BuildKit warns about those but accepts them).
fn logical_line(
    lines: &[&str],
    i: &mut usize,
    escape: char,
    comments: &mut Vec<(usize, String)>,
) -> String {
    let mut logical = String::new();
    let mut cur = lines[*i];
    loop {
        match continued(cur, escape) {
            Some(head) => {
                logical.push_str(head);
                *i += 1;
                while *i < lines.len() && (is_comment(lines[*i]) || lines[*i].trim().is_empty()) {
                    if is_comment(lines[*i]) {
                        let t = lines[*i].trim_start().trim_start_matches('#').trim();
                        comments.push((*i + 1, t.to_string()));
                    }
                    *i += 1;
                }
                if *i >= lines.len() {
                    break;
                }
                cur = lines[*i];
            }
            None => {
                logical.push_str(cur);
                *i += 1;
                break;
            }
        }
    }
    logical
}

/// The bodies of the heredocs `instr`'s shell form opens, read from `lines[*i..]`; `*i`
/// moves past them.
fn read_heredocs(
    lines: &[&str],
    i: &mut usize,
    instr: &mut Instruction,
    errors: &mut Vec<ParseError>,
) {
    let Args::Shell(s) = &instr.args else {
        return;
    };
    for (name, strip_tabs, quoted) in heredoc_markers(s) {
        let mut body = String::new();
        let mut closed = false;
        while *i < lines.len() {
            let l = lines[*i];
            *i += 1;
            let cmp = if strip_tabs {
                l.trim_start_matches('\t')
            } else {
                l
            };
            if cmp == name {
                closed = true;
                break;
            }
            body.push_str(cmp);
            body.push('\n');
        }
        if !closed {
            errors.push(ParseError {
                line: instr.line,
                message: format!("heredoc `{name}` is not terminated"),
            });
        }
        instr.heredocs.push(Heredoc {
            name,
            strip_tabs,
            quoted,
            body,
        });
    }
    instr.end_line = (*i).max(instr.line);
}

/// Leading `--flag[=value]` words.
fn parse_flags(rest: &str) -> (Vec<Flag>, &str) {
    let mut flags = Vec::new();
    let mut rest = rest.trim_start();
    while let Some(after) = rest.strip_prefix("--") {
        // A flag ends at unquoted whitespace.
        let mut end = after.len();
        let mut quote: Option<char> = None;
        for (p, c) in after.char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() => {
                    end = p;
                    break;
                }
                None => {}
            }
        }
        let word = &after[..end];
        if word.is_empty() {
            break;
        }
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(unquote(v))),
            None => (word.to_string(), None),
        };
        flags.push(Flag { name, value });
        rest = after[end..].trim_start();
    }
    (flags, rest)
}

fn unquote(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        v[1..v.len() - 1].to_string()
    } else {
        v.to_string()
    }
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'` markers in a shell-form line, in order.
fn heredoc_markers(s: &str) -> Vec<(String, bool, bool)> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut k = 0;
    while k < chars.len() {
        let c = chars[k];
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                k += 1;
                continue;
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                k += 1;
                continue;
            }
            None => {}
        }
        if c == '<' && chars.get(k + 1) == Some(&'<') && chars.get(k + 2) != Some(&'<') {
            let mut j = k + 2;
            let strip = chars.get(j) == Some(&'-');
            if strip {
                j += 1;
            }
            let q = match chars.get(j) {
                Some(&c) if c == '"' || c == '\'' => {
                    j += 1;
                    Some(c)
                }
                _ => None,
            };
            let name_start = j;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            let name: String = chars[name_start..j].iter().collect();
            if let Some(q) = q {
                if chars.get(j) == Some(&q) {
                    j += 1;
                } else {
                    k = j.max(k + 1);
                    continue;
                }
            }
            if !name.is_empty() {
                out.push((name, strip, q.is_some()));
            }
            k = j.max(k + 1);
            continue;
        }
        k += 1;
    }
    out
}

/// One build stage: a `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based stage index.
    pub index: usize,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// The image as written.
    pub base: String,
    /// The image with the global ARGs expanded (defaults only).
    pub base_resolved: String,
    /// `--platform=` as written.
    pub platform: Option<String>,
    /// Line of the FROM.
    pub line: usize,
    /// Indices into `Dockerfile::instructions` of this stage's instructions (FROM excluded).
    pub body: std::ops::Range<usize>,
    /// The base is an earlier stage: its index.
    pub parent: Option<usize>,
}

impl Dockerfile {
    /// `ARG`s before the first `FROM`, with their defaults (empty when none).
    pub fn global_args(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        for ins in &self.instructions {
            if ins.keyword == "FROM" {
                break;
            }
            if ins.keyword == "ARG" {
                for w in ins.words() {
                    let (k, v) = match w.split_once('=') {
                        Some((k, v)) => (k.to_string(), expand(v, &vars, self.escape)),
                        None => (w.clone(), String::new()),
                    };
                    vars.insert(k, v);
                }
            }
        }
        vars
    }

    /// The build stages.
    pub fn stages(&self) -> Vec<Stage> {
        let vars = self.global_args();
        let mut stages: Vec<Stage> = Vec::new();
        for (idx, ins) in self.instructions.iter().enumerate() {
            if ins.keyword != "FROM" {
                continue;
            }
            if let Some(last) = stages.last_mut() {
                last.body.end = idx;
            }
            let words = ins.words();
            let base = words.first().cloned().unwrap_or_default();
            let name = match words.as_slice() {
                [_, as_kw, name, ..] if as_kw.eq_ignore_ascii_case("as") => {
                    Some(name.to_ascii_lowercase())
                }
                _ => None,
            };
            let base_resolved = expand(&base, &vars, self.escape);
            let lower = base_resolved.to_ascii_lowercase();
            let parent = stages
                .iter()
                .rev()
                .find(|s| s.name.as_deref() == Some(lower.as_str()))
                .map(|s| s.index);
            stages.push(Stage {
                index: stages.len(),
                name,
                base,
                base_resolved,
                platform: ins.flag("platform").map(str::to_string),
                line: ins.line,
                body: idx + 1..self.instructions.len(),
                parent,
            });
        }
        stages
    }
}

#[cfg(test)]
mod tests;
