//! Line histories walked with ↑/↓: the `:` command line's and the `/` filter's. Entries are
//! oldest first, a line equal to the last one is not added twice, and at most `MAX` are kept;
//! walking remembers what was being typed (the draft) and ↓ past the newest brings it back.

/// Lines a history keeps.
const MAX: usize = 50;

/// Add `line` (trimmed; empty lines and repeats of the last line are not added).
pub fn push(history: &mut Vec<String>, line: &str) {
    let line = line.trim();
    if line.is_empty() || history.last().map(String::as_str) == Some(line) {
        return;
    }
    history.push(line.to_string());
    if history.len() > MAX {
        history.remove(0);
    }
}

/// Where a walk through a history is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// The entry shown (None: editing a new line).
    pos: Option<usize>,
    /// What was typed before the walk began.
    draft: String,
}

impl Walk {
    /// ↑: show the previous entry in `input`.
    pub fn prev(&mut self, history: &[String], input: &mut String) {
        if history.is_empty() {
            return;
        }
        let pos = match self.pos {
            None => {
                self.draft = input.clone();
                history.len() - 1
            }
            Some(p) => p.saturating_sub(1),
        };
        self.pos = Some(pos);
        *input = history[pos].clone();
    }

    /// ↓: show the next entry, or the draft after the newest.
    pub fn next(&mut self, history: &[String], input: &mut String) {
        match self.pos {
            Some(p) if p + 1 < history.len() => {
                self.pos = Some(p + 1);
                *input = history[p + 1].clone();
            }
            Some(_) => {
                self.pos = None;
                *input = std::mem::take(&mut self.draft);
            }
            None => {}
        }
    }

    /// The line was edited: the next ↑ starts from the newest entry again.
    pub fn edited(&mut self) {
        self.pos = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_back_and_forth_to_the_draft() {
        let mut h = Vec::new();
        for l in ["a", "b", "b", " ", "c"] {
            push(&mut h, l);
        }
        assert_eq!(h, ["a", "b", "c"]);
        let (mut w, mut input) = (Walk::default(), "dr".to_string());
        w.prev(&h, &mut input);
        w.prev(&h, &mut input);
        assert_eq!(input, "b");
        w.prev(&h, &mut input);
        w.prev(&h, &mut input);
        assert_eq!(input, "a", "stops at the oldest");
        w.next(&h, &mut input);
        w.next(&h, &mut input);
        w.next(&h, &mut input);
        assert_eq!(input, "dr");
        let mut empty = String::new();
        Walk::default().prev(&[], &mut empty);
        assert_eq!(empty, "");
    }

    #[test]
    fn keeps_at_most_max() {
        let mut h = Vec::new();
        for i in 0..MAX + 5 {
            push(&mut h, &i.to_string());
        }
        assert_eq!(h.len(), MAX);
        assert_eq!(h[0], "5");
    }
}
