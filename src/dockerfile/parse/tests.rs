use super::*;

#[test]
fn continuations_comments_and_json() {
    let df = parse(
        "# syntax=docker/dockerfile:1\n\nFROM alpine:3.20 AS base\nRUN apk add \\\n  # a comment\n  curl \\\n\n  git\nCMD [\"/bin/sh\", \"-c\", \"echo hi\"]\nENTRYPOINT /bin/app --x\n",
    );
    assert_eq!(df.directives["syntax"], "docker/dockerfile:1");
    assert!(df.errors.is_empty(), "{:?}", df.errors);
    let run = &df.instructions[1];
    assert_eq!(run.keyword, "RUN");
    assert_eq!(run.line, 4);
    assert_eq!(run.words(), ["apk", "add", "curl", "git"]);
    assert_eq!(
        df.instructions[2].args,
        Args::Exec(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
    );
    assert_eq!(df.instructions[2].line, 9);
    assert!(!df.instructions[3].is_exec_form());
    assert_eq!(df.comments, [(5, "a comment".to_string())]);
}

#[test]
fn escape_directive_backtick() {
    let df = parse(
        "# escape=`\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\nRUN dir `\n  c:\\\n",
    );
    assert_eq!(df.escape, '`');
    assert_eq!(df.instructions.len(), 2);
    assert_eq!(df.instructions[1].words(), ["dir", "c:"]);
}

#[test]
fn directive_after_comment_is_a_comment() {
    let df = parse("# hello\n# escape=`\nFROM x:1\n");
    assert_eq!(df.escape, '\\');
    assert!(df.directives.is_empty());
}

#[test]
fn heredocs_several_and_tab_stripping() {
    let df = parse(
        "FROM debian:12\nRUN <<EOF cat > /a && cat <<-'END' > /b\napt-get update\nEOF\n\t\tliteral $HOME\n\tEND\nCOPY <<CONF /etc/app.conf\nkey=1\nCONF\nUSER 1000\n",
    );
    assert!(df.errors.is_empty(), "{:?}", df.errors);
    let run = &df.instructions[1];
    assert_eq!(run.heredocs.len(), 2);
    assert_eq!(run.heredocs[0].name, "EOF");
    assert_eq!(run.heredocs[0].body, "apt-get update\n");
    assert!(run.heredocs[1].strip_tabs && run.heredocs[1].quoted);
    assert_eq!(run.heredocs[1].body, "literal $HOME\n");
    assert_eq!(run.end_line, 6);
    assert_eq!(df.instructions[2].heredocs[0].body, "key=1\n");
    assert_eq!(df.instructions[3].keyword, "USER");
    assert_eq!(df.instructions[3].line, 10);
}

#[test]
fn unterminated_heredoc_is_an_error_not_a_panic() {
    let df = parse("FROM a:1\nRUN <<EOF\necho\n");
    assert_eq!(df.errors.len(), 1);
    assert!(df.errors[0].message.contains("EOF"));
}

#[test]
fn flags_and_stages() {
    let df = parse(
        "ARG BASE=golang\nARG VER\nFROM --platform=$BUILDPLATFORM ${BASE}:${VER:-1.22} AS Build\nRUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=npm go build\nFROM scratch\nCOPY --from=build --chown=65532:65532 --link /out /\n",
    );
    let st = df.stages();
    assert_eq!(st.len(), 2);
    assert_eq!(st[0].name.as_deref(), Some("build"));
    assert_eq!(st[0].base_resolved, "golang:1.22");
    assert_eq!(st[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    let run = &df.instructions[3];
    assert_eq!(run.flag_values("mount").count(), 2);
    let copy = &df.instructions[5];
    assert_eq!(copy.flag("from"), Some("build"));
    assert_eq!(copy.flag("link"), Some(""));
    assert_eq!(copy.flag("chown"), Some("65532:65532"));
    assert_eq!(copy.words(), ["/out", "/"]);
    assert_eq!(st[1].body, 5..6);
}

#[test]
fn expansion_forms() {
    let mut v = BTreeMap::new();
    v.insert("A".to_string(), "x".to_string());
    v.insert("E".to_string(), String::new());
    assert_eq!(expand("$A/${A}", &v, '\\'), "x/x");
    assert_eq!(expand("${E:-d}${E-d}${U-d}", &v, '\\'), "dd");
    assert_eq!(expand("${A:+y}${U:+y}${E+z}", &v, '\\'), "yz");
    assert_eq!(expand("\\$A ${U}", &v, '\\'), "$A ");
    assert_eq!(expand("${A#x}", &v, '\\'), "${A#x}");
    assert_eq!(expand("${A", &v, '\\'), "${A");
    assert_eq!(expand("$", &v, '\\'), "$");
}

#[test]
fn unknown_instruction_and_garbage() {
    let df = parse("FORM x\n\\\n[\"\n<<\nRUN <<\n\u{0}\u{feff}");
    assert!(!df.errors.is_empty());
    for s in [
        "",
        "\\",
        "FROM",
        "RUN [",
        "COPY --",
        "RUN <<'",
        "RUN <<-\"x",
        "# escape=q\n",
    ] {
        let _ = parse(s).stages();
    }
}
