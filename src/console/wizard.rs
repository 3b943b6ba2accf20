//! The rotation wizard's keys: `r` starts a rotation of the selected token or certificate, `n`
//! performs the next step, `R` revokes now, `x` aborts. Nothing is performed here: `update`
//! only queues a `ConsoleAction` in `AppState::pending_actions` (the runner hands it to the
//! worker). Dangerous steps ask first: abort asks y/n, a revoke asks for the old credential's
//! name typed exactly, and only then queues a forced `next` (the library records a revoke as
//! forced only when verification had not passed).

use crate::rotation::RotationState;

use super::actions::{self, ConsoleAction};
use super::app::{AppState, ViewId};
use super::keymap::Action;
use super::rows;

/// A question in the footer that takes the keyboard until answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// `abort rot-…? y/n`
    ConfirmAbort { id: String },
    /// Type `name` to revoke it.
    TypeName {
        id: String,
        name: String,
        input: String,
    },
    /// Rotate token `name`: `s` same Client ID (a new secret), `n` a new Client ID (`-v2`).
    ChooseTokenRotation { name: String },
}

impl AppState {
    /// Whether changes are possible; if not, say why in the header.
    fn may_act(&mut self) -> bool {
        let why = if self.header.read_only {
            actions::READ_ONLY
        } else if !self.actions_available {
            actions::NO_STORE
        } else {
            return true;
        };
        self.feed.notice = Some(why.into());
        false
    }

    fn selected_rotation(&self) -> Option<&super::model::RotationRow> {
        self.rotations.get(self.selected[ViewId::Rotations.index()])
    }

    fn request(&mut self, action: ConsoleAction, what: String) {
        self.pending_actions.push(action);
        self.feed.notice = Some(what);
    }

    /// Ask for a rotation of the certificate `serial` (CN `cn`), to `new_cn` when given.
    pub(super) fn start_cert_rotation(
        &mut self,
        serial: String,
        cn: String,
        new_cn: Option<String>,
    ) {
        if !self.may_act() {
            return;
        }
        let what = match &new_cn {
            Some(n) => format!("starting a rotation of {cn} to the new CN {n}…"),
            None => format!("starting a rotation of {cn}…"),
        };
        self.request(ConsoleAction::StartCert { serial, cn, new_cn }, what);
    }

    /// `r`, `n`, `R`, `x` in a view.
    pub(super) fn rotation_key(&mut self, action: Action) {
        if !self.may_act() {
            return;
        }
        match (action, self.view) {
            (Action::StartRotation, ViewId::Tokens) => {
                let sel = self.selected[ViewId::Tokens.index()];
                let Some(t) = rows::tokens(self).get(sel).map(|t| t.name.clone()) else {
                    return;
                };
                self.prompt = Some(Prompt::ChooseTokenRotation { name: t });
            }
            (Action::StartRotation, ViewId::Certs) => {
                let sel = self.selected[ViewId::Certs.index()];
                let Some((serial, cn)) = rows::certs(self)
                    .get(sel)
                    .map(|c| (c.serial.clone(), c.common_name.clone()))
                else {
                    return;
                };
                self.start_cert_rotation(serial, cn, None);
            }
            (Action::StartRotation, _) => {
                self.feed.notice =
                    Some("r starts a rotation from view 2 (tokens) or 3 (certs)".into());
            }
            (_, v) if v != ViewId::Rotations => {
                self.feed.notice = Some("n, R and x act on rotations in view 6".into());
            }
            (Action::NextStep, _) => {
                let Some(r) = self.selected_rotation() else {
                    return;
                };
                let (id, state) = (r.view.id.clone(), r.view.state);
                match state {
                    s if s.is_finished() => {
                        self.feed.notice = Some(format!("{id} is {}: nothing left", s.as_str()));
                    }
                    // The next step is the revoke: it asks for the name like `R`.
                    RotationState::Verified => self.rotation_key(Action::RevokeNow),
                    _ => self.request(
                        ConsoleAction::Next { id, force: false },
                        "performing the next step…".into(),
                    ),
                }
            }
            (Action::RevokeNow, _) => {
                let Some(r) = self.selected_rotation() else {
                    return;
                };
                let (id, state, name) = (r.view.id.clone(), r.view.state, r.old_name.clone());
                match state {
                    RotationState::Added | RotationState::RollingOut | RotationState::Verified => {
                        self.prompt = Some(Prompt::TypeName {
                            id,
                            name,
                            input: String::new(),
                        });
                    }
                    RotationState::Created => {
                        self.feed.notice = Some(format!(
                            "{id}: the new credential is in no policy yet; revoking the old one would lock every client out (press n to add it first)"
                        ));
                    }
                    s => self.feed.notice = Some(format!("{id} is {}: nothing left", s.as_str())),
                }
            }
            (Action::AbortRotation, _) => {
                let Some(r) = self.selected_rotation() else {
                    return;
                };
                if r.view.state.is_finished() {
                    self.feed.notice = Some(format!(
                        "{} is {}: nothing to abort",
                        r.view.id,
                        r.view.state.as_str()
                    ));
                } else {
                    self.prompt = Some(Prompt::ConfirmAbort {
                        id: r.view.id.clone(),
                    });
                }
            }
            _ => {}
        }
    }

    /// A key while a prompt is open: `action` from the prompt's bindings, `typed` the character
    /// for a text prompt.
    pub(super) fn prompt_key(&mut self, action: Option<Action>, typed: Option<char>) {
        let Some(prompt) = self.prompt.take() else {
            return;
        };
        match (prompt, action) {
            (_, Some(Action::Cancel)) => self.feed.notice = Some("cancelled".into()),
            (Prompt::ChooseTokenRotation { name }, _) if matches!(typed, Some('s' | 'n')) => {
                let in_place = typed == Some('s');
                let how = if in_place {
                    "same Client ID, new secret"
                } else {
                    "new Client ID"
                };
                self.request(
                    ConsoleAction::StartToken {
                        name: name.clone(),
                        in_place,
                    },
                    format!("starting a rotation of {name} ({how})…"),
                );
            }
            (Prompt::ConfirmAbort { id }, Some(Action::Confirm)) => self.request(
                ConsoleAction::Abort { id: id.clone() },
                format!("aborting {id}…"),
            ),
            (Prompt::TypeName { id, name, input }, Some(Action::Confirm)) => {
                if input == name {
                    self.request(
                        ConsoleAction::Next { id, force: true },
                        format!("revoking {name}…"),
                    );
                } else {
                    self.feed.notice = Some(format!(
                        "not revoked: {input:?} is not {name:?} (type the name exactly)"
                    ));
                }
            }
            (
                Prompt::TypeName {
                    id,
                    name,
                    mut input,
                },
                Some(Action::DeleteChar),
            ) => {
                input.pop();
                self.prompt = Some(Prompt::TypeName { id, name, input });
            }
            (
                Prompt::TypeName {
                    id,
                    name,
                    mut input,
                },
                None,
            ) => {
                if let Some(c) = typed {
                    input.push(c);
                }
                self.prompt = Some(Prompt::TypeName { id, name, input });
            }
            // Any other key leaves a y/n question open.
            (p, _) => self.prompt = Some(p),
        }
    }
}
