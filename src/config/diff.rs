//! A small line diff in unified style (`@@ -a,b +c,d @@`, lines prefixed ` `, `-`, `+`) so an
//! edit can be shown before it is written. Policy files are small: common head and tail are
//! trimmed, then the middle is diffed with a plain LCS table.

/// Lines of context around each change.
const CONTEXT: usize = 2;

/// The unified diff of `old` → `new` under `label`; empty when they are equal.
pub(crate) fn unified(label: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = diff_lines(&a, &b);
    let mut out = format!("--- {label}\n+++ {label} (edited)\n");
    for hunk in hunks(&ops) {
        let (mut a_start, mut a_len, mut b_start, mut b_len) = (None, 0, None, 0);
        for op in &ops[hunk.clone()] {
            match op {
                Op::Same(i, j) => {
                    a_start.get_or_insert(*i);
                    b_start.get_or_insert(*j);
                    a_len += 1;
                    b_len += 1;
                }
                Op::Del(i) => {
                    a_start.get_or_insert(*i);
                    a_len += 1;
                }
                Op::Add(j) => {
                    b_start.get_or_insert(*j);
                    b_len += 1;
                }
            }
        }
        out.push_str(&format!(
            "@@ -{},{a_len} +{},{b_len} @@\n",
            a_start.map_or(0, |s| s + 1),
            b_start.map_or(0, |s| s + 1)
        ));
        for op in &ops[hunk] {
            match op {
                Op::Same(i, _) => out.push_str(&format!(" {}\n", a[*i])),
                Op::Del(i) => out.push_str(&format!("-{}\n", a[*i])),
                Op::Add(j) => out.push_str(&format!("+{}\n", b[*j])),
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    Del(usize),
    Add(usize),
}

fn diff_lines(a: &[&str], b: &[&str]) -> Vec<Op> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    // lcs[i][j] = LCS length of am[i..] and bm[j..].
    let mut lcs = vec![vec![0u32; bm.len() + 1]; am.len() + 1];
    for i in (0..am.len()).rev() {
        for j in (0..bm.len()).rev() {
            lcs[i][j] = if am[i] == bm[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<Op> = (0..head).map(|k| Op::Same(k, k)).collect();
    let (mut i, mut j) = (0, 0);
    while i < am.len() || j < bm.len() {
        if i < am.len() && j < bm.len() && am[i] == bm[j] {
            ops.push(Op::Same(head + i, head + j));
            i += 1;
            j += 1;
        } else if i < am.len() && (j == bm.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Deletions first, as readers of unified diffs expect.
            ops.push(Op::Del(head + i));
            i += 1;
        } else {
            ops.push(Op::Add(head + j));
            j += 1;
        }
    }
    ops.extend((0..tail).map(|k| Op::Same(a.len() - tail + k, b.len() - tail + k)));
    ops
}

/// Ranges of `ops` to print: each change with up to CONTEXT unchanged lines around it, merged
/// when they touch.
fn hunks(ops: &[Op]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        if matches!(op, Op::Same(..)) {
            continue;
        }
        let range = k.saturating_sub(CONTEXT)..(k + CONTEXT + 1).min(ops.len());
        match out.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => out.push(range),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_added_line_with_context() {
        let old = "a\nb\nc\nd\ne\nf\n";
        let new = "a\nb\nc\nc2\nd\ne\nf\n";
        assert_eq!(
            unified("p.toml", old, new),
            "--- p.toml\n+++ p.toml (edited)\n@@ -2,4 +2,5 @@\n b\n c\n+c2\n d\n e\n"
        );
    }

    #[test]
    fn replaced_line_and_separate_hunks() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\nX\n3\n4\n5\n6\n7\n8\nY\n";
        let d = unified("f", old, new);
        assert_eq!(d.matches("@@").count(), 4, "{d}");
        assert!(d.contains("-2\n+X\n") && d.contains("-9\n+Y\n"), "{d}");
    }

    #[test]
    fn equal_is_empty() {
        assert_eq!(unified("f", "a\n", "a\n"), "");
    }
}
