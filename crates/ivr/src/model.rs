//! The flow file: what admins write in `config/flows/*.yaml` (docs/ivr.md).
//!
//! Nodes are externally tagged (`- say: {name: welcome, ...}`) and every struct refuses unknown
//! fields, so serde-saphyr points a typo at its exact line and column. Targets keep their
//! position (`Spanned`) so graph errors (an unknown target) point at the line too.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A node name another node goes to, with where it was written.
pub type Target = Spanned<String>;

/// A flow file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    /// The flow's name (routes and `call` nodes use it).
    pub flow: String,
    /// A version label recorded with each call; default: a hash of the file.
    #[serde(default)]
    pub version: Option<String>,
    /// Language of the prompts (TTS), e.g. `en-US`.
    #[serde(default = "default_language")]
    pub language: String,
    /// TTS voice (espeak-ng voice name), e.g. `en-us`.
    #[serde(default = "default_voice")]
    pub voice: String,
    /// The first node.
    #[schemars(with = "String")]
    pub start: Target,
    /// Opening hours, for `business_hours` in branch conditions.
    #[serde(default)]
    pub business_hours: Option<BusinessHours>,
    /// HTTP backends that `lookup` nodes call.
    #[serde(default)]
    pub backends: BTreeMap<String, Backend>,
    /// The nodes.
    #[schemars(with = "Vec<Node>")]
    pub nodes: Vec<Spanned<Node>>,
}

fn default_language() -> String {
    "en-US".into()
}

fn default_voice() -> String {
    "en-us".into()
}

fn default_true() -> bool {
    true
}

fn default_timeout() -> u32 {
    5
}

fn default_retries() -> u32 {
    2
}

fn default_confidence() -> f32 {
    0.5
}

/// Opening hours: days (0 = Monday … 6 = Sunday) and hours, local to `utc_offset_minutes`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// Open days, 0 = Monday.
    pub days: Vec<u8>,
    /// Opening hour (0–23).
    pub open: u8,
    /// Closing hour (1–24).
    pub close: u8,
    /// The time zone, minutes east of UTC (e.g. 480 for Beijing).
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

/// An HTTP backend.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Base URL, e.g. `http://orders.internal:8080`.
    pub url: String,
    /// Request timeout.
    #[serde(default = "default_lookup_timeout")]
    pub timeout_ms: u32,
}

fn default_lookup_timeout() -> u32 {
    2000
}

/// A node.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// Speak text (TTS) or play a prompt file.
    Say(Say),
    /// A DTMF menu.
    Menu(Menu),
    /// Speech and DTMF together: intents, or digits.
    Ask(Ask),
    /// An HTTP request to a backend; the JSON answer goes into variables.
    Lookup(Lookup),
    /// Set variables.
    Set(Set),
    /// Go on by conditions over variables.
    Branch(Branch),
    /// Hand the caller to the ACD.
    Queue(Queue),
    /// Send the call to a SIP URI.
    Transfer(Transfer),
    /// Offer a callback and end the call.
    Callback(Callback),
    /// End the call.
    Hangup(Hangup),
    /// Run another flow, then come back.
    Call(CallFlow),
    /// End a sub-flow: back to the flow that called it.
    Return(Return),
}

/// `say`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Say {
    /// The node's name.
    pub name: String,
    /// Text to speak; `{var}` interpolates a variable.
    #[serde(default)]
    pub text: Option<String>,
    /// A WAV prompt file (relative to the flow file).
    #[serde(default)]
    pub file: Option<String>,
    /// Voice for this prompt (default: the flow's).
    #[serde(default)]
    pub voice: Option<String>,
    /// A key or speech stops the prompt.
    #[serde(default = "default_true")]
    pub barge_in: bool,
    /// Where to go after.
    #[schemars(with = "String")]
    pub next: Target,
}

/// What to do when the caller says nothing, or nothing that matches.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Said before asking again.
    pub prompt: String,
    /// How many times to ask again.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Where to go when the retries are spent.
    #[schemars(with = "String")]
    pub then: Target,
}

/// `menu`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    /// The node's name.
    pub name: String,
    /// The menu's prompt.
    pub prompt: String,
    /// Key → node.
    #[schemars(with = "BTreeMap<String, String>")]
    pub choices: BTreeMap<String, Target>,
    /// Seconds to wait for a key after the prompt.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// No key.
    #[serde(default)]
    pub no_input: Option<Retry>,
    /// A key that is not a choice.
    #[serde(default)]
    pub no_match: Option<Retry>,
}

/// An intent of an `ask`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// Phrases callers say for it (the grammar is made from them).
    pub examples: Vec<String>,
    /// A key that means the same.
    #[serde(default)]
    pub dtmf: Option<String>,
    /// Where to go.
    #[schemars(with = "String")]
    pub next: Target,
}

/// Digits an `ask` collects (keys, or spoken digits read back for confirmation).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Digits {
    /// Fewest digits.
    #[serde(default = "default_min_digits")]
    pub min: u32,
    /// Most digits (collection ends there).
    pub max: u32,
    /// A key that ends collection early.
    #[serde(default = "default_terminator")]
    pub terminator: String,
    /// The variable that receives them.
    pub into: String,
    /// Card data (PCI DSS): the call's recording is paused from the question until the node
    /// is left, spoken digits are not read back, and the digits stay out of logs and
    /// records (the variable still holds them, for a payment lookup).
    #[serde(default)]
    pub pci: bool,
    /// Where to go.
    #[schemars(with = "String")]
    pub next: Target,
}

fn default_min_digits() -> u32 {
    1
}

fn default_terminator() -> String {
    "#".into()
}

/// `ask`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    /// The node's name.
    pub name: String,
    /// The question.
    pub prompt: String,
    /// Intents (speech or their key).
    #[serde(default)]
    pub intents: BTreeMap<String, Intent>,
    /// Or digits.
    #[serde(default)]
    pub digits: Option<Digits>,
    /// Below this confidence a recognition counts as no match.
    #[serde(default = "default_confidence")]
    pub confidence: f32,
    /// Seconds to wait for speech or a key after the prompt.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// Nothing said or pressed.
    #[serde(default)]
    pub no_input: Option<Retry>,
    /// Nothing that matches.
    #[serde(default)]
    pub no_match: Option<Retry>,
}

/// HTTP method of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Method {
    /// GET.
    #[serde(rename = "GET")]
    Get,
    /// POST (JSON body).
    #[serde(rename = "POST")]
    Post,
}

/// `lookup`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The node's name.
    pub name: String,
    /// A backend of the flow's `backends`.
    pub backend: String,
    /// GET or POST.
    #[serde(default = "default_method")]
    pub method: Method,
    /// Path under the backend's URL; `{var}` interpolates.
    pub path: String,
    /// POST body fields; values interpolate.
    #[serde(default)]
    pub body: BTreeMap<String, String>,
    /// The JSON answer's fields become `INTO.field` variables.
    pub into: String,
    /// Where to go.
    #[schemars(with = "String")]
    pub next: Target,
    /// Where to go on a timeout or an error status.
    #[schemars(with = "String")]
    pub on_error: Target,
}

fn default_method() -> Method {
    Method::Get
}

/// `set`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Set {
    /// The node's name.
    pub name: String,
    /// Variable → value (interpolated).
    pub vars: BTreeMap<String, String>,
    /// Where to go.
    #[schemars(with = "String")]
    pub next: Target,
}

/// One test of a branch condition on a variable (exactly one test per condition).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The variable: `caller`, `tier`, `business_hours`, `surge`, `hour`, `weekday`, a lookup
    /// result such as `order.status`, or any variable set before.
    pub var: String,
    /// Equal to (as text).
    #[serde(default)]
    pub eq: Option<String>,
    /// Not equal to.
    #[serde(default)]
    pub ne: Option<String>,
    /// One of these.
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// A number below.
    #[serde(default)]
    pub lt: Option<f64>,
    /// A number at or above.
    #[serde(default)]
    pub ge: Option<f64>,
    /// Set (true) or unset (false).
    #[serde(default)]
    pub exists: Option<bool>,
    /// Starts with (e.g. a caller number prefix).
    #[serde(default)]
    pub prefix: Option<String>,
}

/// A case of a branch: all conditions hold → go to `next`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Conditions, all of which must hold.
    #[serde(rename = "if")]
    pub when: Vec<Condition>,
    /// Where to go.
    #[schemars(with = "String")]
    pub next: Target,
}

/// `branch`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// The node's name.
    pub name: String,
    /// Cases in order; the first that holds wins.
    pub cases: Vec<Case>,
    /// Where to go when none holds.
    #[schemars(with = "String")]
    pub otherwise: Target,
}

/// `queue`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    /// The node's name.
    pub name: String,
    /// A queue of config/acd.yaml.
    pub queue: String,
    /// The problem type the IVR learned (routing weighs agents' skill for it).
    #[serde(default)]
    pub problem_type: Option<String>,
    /// The customer tier (interpolated, e.g. `{tier}`).
    #[serde(default)]
    pub tier: Option<String>,
    /// Extra skills required.
    #[serde(default)]
    pub skills: Vec<String>,
    /// A flow the caller is put in when the agent hangs up first: a satisfaction survey (an
    /// `ask` whose digits go into `csat`, 1 to 5, kept with the call's record and in
    /// `crest_csat_*`). Without it the call ends with the agent's BYE.
    #[serde(default)]
    pub survey: Option<String>,
}

/// `transfer`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// The node's name.
    pub name: String,
    /// A SIP URI (interpolated).
    pub uri: String,
}

/// `callback`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    /// The node's name.
    pub name: String,
    /// The queue whose agent calls back.
    pub queue: String,
    /// The number to call (default: the caller's).
    #[serde(default)]
    pub number: Option<String>,
    /// Said before hanging up.
    #[serde(default)]
    pub prompt: Option<String>,
}

/// `hangup`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hangup {
    /// The node's name.
    pub name: String,
    /// Logged with the call.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `call`: a sub-flow.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallFlow {
    /// The node's name.
    pub name: String,
    /// The flow to run.
    pub flow: String,
    /// Where to go when it returns.
    #[schemars(with = "String")]
    pub next: Target,
}

/// `return`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Return {
    /// The node's name.
    pub name: String,
}

impl Node {
    /// The node's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Say(n) => &n.name,
            Self::Menu(n) => &n.name,
            Self::Ask(n) => &n.name,
            Self::Lookup(n) => &n.name,
            Self::Set(n) => &n.name,
            Self::Branch(n) => &n.name,
            Self::Queue(n) => &n.name,
            Self::Transfer(n) => &n.name,
            Self::Callback(n) => &n.name,
            Self::Hangup(n) => &n.name,
            Self::Call(n) => &n.name,
            Self::Return(n) => &n.name,
        }
    }

    /// The kind, as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Say(_) => "say",
            Self::Menu(_) => "menu",
            Self::Ask(_) => "ask",
            Self::Lookup(_) => "lookup",
            Self::Set(_) => "set",
            Self::Branch(_) => "branch",
            Self::Queue(_) => "queue",
            Self::Transfer(_) => "transfer",
            Self::Callback(_) => "callback",
            Self::Hangup(_) => "hangup",
            Self::Call(_) => "call",
            Self::Return(_) => "return",
        }
    }

    /// Every node this one can go to.
    pub fn targets(&self) -> Vec<&Target> {
        fn retry(r: &Option<Retry>) -> Option<&Target> {
            r.as_ref().map(|r| &r.then)
        }
        match self {
            Self::Say(n) => vec![&n.next],
            Self::Menu(n) => n
                .choices
                .values()
                .chain(retry(&n.no_input))
                .chain(retry(&n.no_match))
                .collect(),
            Self::Ask(n) => n
                .intents
                .values()
                .map(|i| &i.next)
                .chain(n.digits.as_ref().map(|d| &d.next))
                .chain(retry(&n.no_input))
                .chain(retry(&n.no_match))
                .collect(),
            Self::Lookup(n) => vec![&n.next, &n.on_error],
            Self::Set(n) => vec![&n.next],
            Self::Branch(n) => n
                .cases
                .iter()
                .map(|c| &c.next)
                .chain([&n.otherwise])
                .collect(),
            Self::Call(n) => vec![&n.next],
            Self::Queue(_)
            | Self::Transfer(_)
            | Self::Callback(_)
            | Self::Hangup(_)
            | Self::Return(_) => Vec::new(),
        }
    }

    /// Whether the call leaves the flow here.
    pub fn is_exit(&self) -> bool {
        self.targets().is_empty()
    }
}
