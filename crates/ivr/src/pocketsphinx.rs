//! CMU PocketSphinx (Debian's `libpocketsphinx3` 5prealpha and `pocketsphinx-en-us`) through a
//! small FFI module of our own: one decoder per listening call, a JSGF grammar per `ask`, the
//! dictionary cut to the grammar's words, 8 kHz audio upsampled to 16 kHz, and the decoder's
//! voice activity detection for the end of an utterance. A decoder's start loads the acoustic
//! model (tens of milliseconds and megabytes), so decoders that finished an utterance wait in
//! the model's pool for the next listen with the same grammar.
//!
//! Why our own FFI: the crates.io `pocketsphinx` bindings declare `ps_start_utt`, `ps_get_hyp`
//! and `ps_nbest` with the arguments of an older API (ASR.md); the signatures below are those
//! of `/usr/include/pocketsphinx/{pocketsphinx,ps_search}.h`.
// The decoder is C: every call into it is `unsafe`, kept to this module, each with the
// invariant it relies on. Nothing else in the crate uses unsafe code.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::asr::{AsrError, Heard, Recognizer, jsgf, prune_dict, upsample_2x};
use crate::engine::Grammar;

#[link(name = "pocketsphinx")]
#[link(name = "sphinxbase")]
unsafe extern "C" {
    fn ps_args() -> *const c_void;
    fn err_set_logfp(stream: *mut c_void);
    fn cmd_ln_parse_r(
        inout: *mut c_void,
        defn: *const c_void,
        argc: c_int,
        argv: *const *const c_char,
        strict: c_int,
    ) -> *mut c_void;
    fn cmd_ln_free_r(cmdln: *mut c_void) -> c_int;
    fn ps_init(config: *mut c_void) -> *mut c_void;
    fn ps_free(ps: *mut c_void) -> c_int;
    fn ps_set_jsgf_string(ps: *mut c_void, name: *const c_char, jsgf: *const c_char) -> c_int;
    fn ps_set_search(ps: *mut c_void, name: *const c_char) -> c_int;
    fn ps_start_utt(ps: *mut c_void) -> c_int;
    fn ps_end_utt(ps: *mut c_void) -> c_int;
    fn ps_process_raw(
        ps: *mut c_void,
        data: *const i16,
        n_samples: usize,
        no_search: c_int,
        full_utt: c_int,
    ) -> c_int;
    fn ps_get_in_speech(ps: *mut c_void) -> u8;
    fn ps_get_hyp(ps: *mut c_void, out_best_score: *mut i32) -> *const c_char;
    fn ps_start_stream(ps: *mut c_void) -> c_int;
    fn ps_get_feat(ps: *mut c_void) -> *mut FeatHead;
    fn cmn_live_get(cmn: *mut CmnHead, vec: *mut f32);
    fn cmn_live_set(cmn: *mut CmnHead, vec: *const f32);
}

// glibc: gives the heap's free pages back to the system.
unsafe extern "C" {
    fn malloc_trim(pad: usize) -> c_int;
}

/// The head of sphinxbase's `feat_t` (`sphinxbase/feat.h`, Debian 5prealpha) up to the
/// cepstral mean normaliser: a pooled decoder gets a fresh caller's starting mean back, as a
/// new decoder would have (the mean adapts to each line during an utterance).
#[repr(C)]
struct FeatHead {
    refcount: c_int,
    name: *mut c_char,
    cepsize: i32,
    n_stream: i32,
    stream_len: *mut u32,
    window_size: i32,
    n_sv: i32,
    sv_len: *mut u32,
    subvecs: *mut *mut i32,
    sv_buf: *mut f32,
    sv_dim: i32,
    cmn: c_int,
    varnorm: i32,
    agc: c_int,
    compute_feat: *const c_void,
    cmn_struct: *mut CmnHead,
}

/// sphinxbase's `cmn_t` (`sphinxbase/cmn.h`; `mfcc_t` is `float` in Debian's build).
#[repr(C)]
struct CmnHead {
    cmn_mean: *mut f32,
    cmn_var: *mut f32,
    sum: *mut f32,
    nframe: i32,
    veclen: i32,
}

/// Where the model and dictionary are (Debian's `pocketsphinx-en-us`).
#[derive(Debug, Clone)]
pub struct Model {
    /// The acoustic model directory.
    pub hmm: PathBuf,
    /// The pronouncing dictionary, read once.
    dict: Arc<str>,
    /// Decoders ready for reuse, shared by every recogniser on this model.
    pool: Arc<Pool>,
}

/// Idle decoders kept at most, every grammar together, unless [`Model::keep_idle`] says
/// otherwise: each holds its own copy of the acoustic model (about 4.5 MB), so the pool is
/// sized to the callers listened to at once; beyond it a finished decoder is freed.
const IDLE_DEFAULT: usize = 32;

/// A dictionary cut to a grammar's words, and the words it lacks.
type CutDictionary = (String, Vec<String>);

/// Decoders that finished an utterance, by grammar, and the dictionaries cut for grammars.
#[derive(Debug)]
struct Pool {
    idle: Mutex<HashMap<Arc<str>, Vec<Decoder>>>,
    dicts: Mutex<HashMap<Arc<str>, Arc<CutDictionary>>>,
    keep: std::sync::atomic::AtomicUsize,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            idle: Mutex::default(),
            dicts: Mutex::default(),
            keep: IDLE_DEFAULT.into(),
        }
    }
}

impl Pool {
    fn take(&self, key: &str) -> Option<Decoder> {
        self.idle.lock().ok()?.get_mut(key)?.pop()
    }

    fn put(&self, mut d: Decoder) {
        if d.in_utterance {
            // SAFETY: d.ps is a live decoder in an utterance.
            unsafe { ps_end_utt(d.ps) };
            d.in_utterance = false;
        }
        if d.initial_mean.is_empty() {
            return;
        }
        let keep = self.keep.load(std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut idle) = self.idle.lock()
            && idle.values().map(Vec::len).sum::<usize>() < keep
        {
            idle.entry(d.key.clone()).or_default().push(d);
            return;
        }
        // Beyond the cap the decoder is freed; the C library keeps freed heap pages unless
        // asked (megabytes a decoder, allocated on the recogniser threads' own arenas).
        drop(d);
        // SAFETY: malloc_trim only releases free memory; nothing refers to it.
        unsafe { malloc_trim(0) };
    }
}

/// How much better (log-likelihood) the garbage loop must score than the best intent for an
/// utterance to be taken as off-topic (measured: `cargo bench -p crest-ivr --bench intent_accuracy`).
pub const OFF_TOPIC_MARGIN: f32 = 2000.0;

/// Mean square of a frame loud enough to be speech (about -45 dBFS): the detector alone takes
/// a quiet line's noise for speech at the start of a listen.
const SPEECH_LEVEL: f64 = 180.0 * 180.0;

/// Quiet audio kept before the first loud frame and fed with it (the decoders' noise floor and
/// a soft first consonant).
const PRE_ROLL_MS: usize = 300;

/// Silence that ends an utterance by default, ms (the library's is 500). Measured with
/// `cargo bench -p crest-ivr --bench intent_accuracy -- 200 220 230 240`: 220 and 230 ms heard
/// 105/110 utterances right (200 and 240 ms: 104) with end of speech → decision p95 275 and
/// 284 ms; the shorter of the two answers sooner.
pub const END_OF_SPEECH_MS: u32 = 220;

/// Debian's model directory.
pub const DEBIAN_MODEL: &str = "/usr/share/pocketsphinx/model/en-us";

impl Model {
    /// Keeps at most `n` finished decoders for reuse (every grammar together).
    pub fn keep_idle(&self, n: usize) {
        self.pool
            .keep
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Decoders waiting in the pool for a listen (every grammar).
    pub fn idle_decoders(&self) -> usize {
        self.pool
            .idle
            .lock()
            .map_or(0, |i| i.values().map(Vec::len).sum())
    }

    /// The words of the dictionary (alternate pronunciations folded).
    pub fn words(&self) -> std::collections::BTreeSet<String> {
        self.dict
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|w| w.split('(').next().unwrap_or(w).to_owned())
            .collect()
    }

    /// The model under `dir` (`en-us/` and `cmudict-en-us.dict`).
    pub fn load(dir: &Path) -> Result<Self, AsrError> {
        let dict = std::fs::read_to_string(dir.join("cmudict-en-us.dict")).map_err(|e| {
            AsrError::Engine(format!(
                "{}: {e} (install pocketsphinx-en-us)",
                dir.display()
            ))
        })?;
        Ok(Self {
            hmm: dir.join("en-us"),
            dict: dict.into(),
            pool: Arc::default(),
        })
    }
}

/// A PocketSphinx decoder for one call.
///
/// Off-topic speech: a garbage branch inside the intent grammar swallows most synthetic (and
/// some real) in-grammar speech (ASR.md measured 69 of 90), so the garbage loop runs as a second
/// decoder on the same audio instead; an utterance is no intent when the garbage path scores
/// better than the best intent path by more than `margin` (log-likelihood units).
#[derive(Debug)]
pub struct PocketSphinx {
    model: Model,
    margin: Option<f32>,
    main: Option<Decoder>,
    garbage: Option<Decoder>,
    in_speech: bool,
    heard_speech: bool,
    /// A frame of the utterance was as loud as speech.
    loud: bool,
    up: Vec<i16>,
    /// Quiet audio before the first loud frame, fed to the decoders when the caller starts
    /// speaking (the decoders do no work while the line is quiet).
    quiet: std::collections::VecDeque<i16>,
    /// A loud frame came: the decoders hear everything until the utterance ends.
    gate_open: bool,
    decoded_ms: u64,
    scores: (i32, Option<i32>),
    /// Silence that ends an utterance, in 10 ms frames.
    end_frames: u32,
}

/// An initialised decoder (owned C pointers) for the grammar `key`.
#[derive(Debug)]
struct Decoder {
    ps: *mut c_void,
    config: *mut c_void,
    key: Arc<str>,
    in_utterance: bool,
    /// The normaliser's starting mean (empty: the layout did not check; not pooled).
    initial_mean: Vec<f32>,
}

impl Decoder {
    /// The cepstral mean normaliser, if `feat_t` has the layout this module expects.
    fn cmn(&self) -> Option<*mut CmnHead> {
        // SAFETY: ps is live; the feature object it returns lives as long as the decoder.
        // The head's layout is checked against what it must hold (a 13-coefficient cepstrum
        // in both the features and the normaliser) before it is used.
        unsafe {
            let feat = ps_get_feat(self.ps);
            if feat.is_null() {
                return None;
            }
            let cmn = (*feat).cmn_struct;
            let ok = !cmn.is_null()
                && (*feat).cepsize == 13
                && (*cmn).veclen == (*feat).cepsize
                && !(*cmn).cmn_mean.is_null();
            ok.then_some(cmn)
        }
    }

    /// Reads the starting mean of a new decoder.
    fn remember_mean(&mut self) {
        if let Some(cmn) = self.cmn() {
            let mut mean = vec![0f32; 13];
            // SAFETY: cmn is the decoder's normaliser with veclen 13 (checked).
            unsafe { cmn_live_get(cmn, mean.as_mut_ptr()) };
            self.initial_mean = mean;
        }
    }

    /// Back to a new caller's state: the normaliser's starting mean, the noise estimate.
    fn reset(&mut self) -> bool {
        let Some(cmn) = self.cmn().filter(|_| self.initial_mean.len() == 13) else {
            return false;
        };
        // SAFETY: as in remember_mean; the decoder is not in an utterance.
        unsafe {
            cmn_live_set(cmn, self.initial_mean.as_ptr());
            ps_start_stream(self.ps) >= 0
        }
    }
}

// The decoder is used by one thread at a time (the recogniser is `Send`, not `Sync`); the C
// library keeps no thread-local state.
unsafe impl Send for Decoder {}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: both pointers came from ps_init / cmd_ln_parse_r and are freed once, here.
        unsafe {
            ps_free(self.ps);
            cmd_ln_free_r(self.config);
        }
    }
}

fn cstring(s: &str) -> Result<CString, AsrError> {
    CString::new(s).map_err(|_| AsrError::Engine("NUL in a decoder argument".into()))
}

impl PocketSphinx {
    /// A recogniser on `model`; with `margin` (see [`OFF_TOPIC_MARGIN`]), intent grammars
    /// reject off-topic speech.
    pub fn new(model: Model, margin: Option<f32>) -> Self {
        Self {
            model,
            margin,
            main: None,
            garbage: None,
            in_speech: false,
            heard_speech: false,
            loud: false,
            up: Vec::new(),
            quiet: std::collections::VecDeque::new(),
            gate_open: false,
            decoded_ms: 0,
            scores: (0, None),
            end_frames: END_OF_SPEECH_MS / 10,
        }
    }

    /// How much silence ends an utterance (default [`END_OF_SPEECH_MS`]; the library's is 500 ms): shorter
    /// answers sooner and risks cutting a caller who pauses between words.
    pub fn with_end_of_speech(mut self, ms: u32) -> Self {
        self.end_frames = (ms / 10).max(1);
        self
    }

    /// Milliseconds of audio the decoders have worked on (a quiet line is not decoded).
    pub fn decoded_ms(&self) -> u64 {
        self.decoded_ms
    }

    /// The path scores of the last utterance: the grammar's and the garbage loop's.
    pub fn scores(&self) -> (i32, Option<i32>) {
        self.scores
    }

    fn decoder(&self, grammar: &Grammar, garbage: bool) -> Result<Decoder, AsrError> {
        let (text, words) = jsgf(grammar, garbage);
        let key: Arc<str> = format!("{}\n{text}", self.end_frames).into();
        let pool = &self.model.pool;
        if let Some(mut d) = pool.take(&key) {
            if !d.reset() {
                return Err(AsrError::Engine("the decoder did not reset".into()));
            }
            // SAFETY: d.ps is a live decoder with its grammar set, not in an utterance.
            if unsafe { ps_start_utt(d.ps) } < 0 {
                return Err(AsrError::Engine("the decoder did not restart".into()));
            }
            d.in_utterance = true;
            return Ok(d);
        }
        let cut = pool.dicts.lock().ok().and_then(|c| c.get(&key).cloned());
        let cut = match cut {
            Some(c) => c,
            None => {
                let c = Arc::new(prune_dict(&self.model.dict, &words));
                if let Ok(mut cache) = pool.dicts.lock() {
                    cache.insert(key.clone(), c.clone());
                }
                c
            }
        };
        let (dict, missing) = (&cut.0, &cut.1);
        if !missing.is_empty() {
            return Err(AsrError::UnknownWords(missing.clone()));
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dict_path =
            std::env::temp_dir().join(format!("crest-asr-{}-{n}.dict", std::process::id()));
        std::fs::write(&dict_path, dict).map_err(|e| AsrError::Engine(e.to_string()))?;
        // The library's log is one global file; `-logfn` per decoder would reopen (and close)
        // it under other threads' decoders. It is turned off once, for the process.
        static QUIET: std::sync::Once = std::sync::Once::new();
        // SAFETY: a NULL stream is the documented way to disable logging (err.h).
        QUIET.call_once(|| unsafe { err_set_logfp(std::ptr::null_mut()) });
        // Word insertion penalty: digit strings suffer insertions ("one eight two …") at the
        // default 0.65; 0.001 made 8 of 40 espeak digit strings exact instead of 2 of 40.
        let wip = if *grammar == Grammar::Digits {
            "0.001"
        } else {
            "0.65"
        };
        let end = self.end_frames.to_string();
        // Wider beams than the library's (1e-48, 7e-29): espeak's en-us "representative" fell
        // out of the default beam in every voice; the benchmark went from 88 % to 95 %.
        let (beam, wbeam) = ("1e-80", "1e-60");
        let args = [
            "-vad_postspeech",
            &end,
            "-hmm",
            &self.model.hmm.to_string_lossy(),
            "-dict",
            &dict_path.to_string_lossy(),
            "-wip",
            wip,
            "-beam",
            beam,
            "-pbeam",
            beam,
            "-wbeam",
            wbeam,
        ]
        .map(cstring);
        let args: Vec<CString> = args.into_iter().collect::<Result<_, _>>()?;
        let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the call;
        // ps_args() is the library's static argument table.
        let config = unsafe {
            cmd_ln_parse_r(
                std::ptr::null_mut(),
                ps_args(),
                argv.len() as c_int,
                argv.as_ptr(),
                1,
            )
        };
        if config.is_null() {
            let _ = std::fs::remove_file(&dict_path);
            return Err(AsrError::Engine("bad decoder arguments".into()));
        }
        // SAFETY: config is a valid command-line object; ps_init copies what it needs.
        let ps = unsafe { ps_init(config) };
        let _ = std::fs::remove_file(&dict_path);
        if ps.is_null() {
            // SAFETY: config came from cmd_ln_parse_r and is not used again.
            unsafe { cmd_ln_free_r(config) };
            return Err(AsrError::Engine(format!(
                "the decoder did not start (model {})",
                self.model.hmm.display()
            )));
        }
        let mut d = Decoder {
            ps,
            config,
            key,
            in_utterance: false,
            initial_mean: Vec::new(),
        };
        d.remember_mean();
        let name = cstring("crest")?;
        let g = cstring(&text)?;
        // SAFETY: d.ps is a live decoder; name and g are valid C strings for the call.
        let ok = unsafe {
            ps_set_jsgf_string(d.ps, name.as_ptr(), g.as_ptr()) >= 0
                && ps_set_search(d.ps, name.as_ptr()) >= 0
                && ps_start_utt(d.ps) >= 0
        };
        if !ok {
            return Err(AsrError::Engine(format!("grammar refused:\n{text}")));
        }
        d.in_utterance = true;
        Ok(d)
    }

    fn hypothesis(d: &mut Decoder) -> (String, i32) {
        let mut score = 0i32;
        d.in_utterance = false;
        // SAFETY: d.ps is a live decoder; the returned string is owned by the decoder and
        // copied before the next call into it.
        unsafe {
            ps_end_utt(d.ps);
            let h = ps_get_hyp(d.ps, &mut score);
            let text = if h.is_null() {
                String::new()
            } else {
                CStr::from_ptr(h).to_string_lossy().into_owned()
            };
            (text, score)
        }
    }

    /// The decoders go back to the model's pool.
    fn give_back(&mut self) {
        for d in [self.main.take(), self.garbage.take()]
            .into_iter()
            .flatten()
        {
            self.model.pool.put(d);
        }
    }

    /// Ends the utterance in both decoders and decides.
    fn verdict(&mut self) -> Heard {
        let heard = self.heard_speech;
        let (text, score) = match self.main.as_mut() {
            Some(d) if heard => Self::hypothesis(d),
            _ => (String::new(), i32::MIN),
        };
        let garbage = self
            .garbage
            .as_mut()
            .filter(|_| heard)
            .map(|d| Self::hypothesis(d).1);
        self.give_back();
        self.scores = (score, garbage);
        // Normalising by the utterance's length (per 10 ms frame) traded no better in the
        // benchmark than one margin for all.
        let rejected = match (garbage, self.margin) {
            (Some(g), Some(m)) => (i64::from(g) - i64::from(score)) as f32 > m,
            _ => false,
        };
        let text = if rejected { String::new() } else { text };
        Heard {
            confidence: if text.is_empty() { 0.0 } else { 1.0 },
            text,
        }
    }
}

impl Drop for PocketSphinx {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl Recognizer for PocketSphinx {
    fn start(&mut self, grammar: &Grammar) -> Result<(), AsrError> {
        self.give_back();
        self.main = Some(self.decoder(grammar, false)?);
        self.garbage = match grammar {
            Grammar::Intents(_) if self.margin.is_some() => {
                Some(self.decoder(&Grammar::Intents(Vec::new()), true)?)
            }
            _ => None,
        };
        self.in_speech = false;
        self.gate_open = false;
        self.quiet.clear();
        self.heard_speech = false;
        self.loud = false;
        Ok(())
    }

    fn feed(&mut self, pcm: &[i16], rate: u32) -> Result<Option<Heard>, AsrError> {
        if self.main.is_none() {
            return Ok(None);
        }
        if rate != 8000 && rate != 16000 {
            return Err(AsrError::Engine(format!("{rate} Hz audio (8000 or 16000)")));
        }
        let level =
            pcm.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / pcm.len().max(1) as f64;
        if !self.gate_open {
            // A quiet line costs the decoders nothing: the last PRE_ROLL of it waits here.
            self.quiet.extend(pcm);
            let keep = rate as usize * PRE_ROLL_MS / 1000;
            let extra = self.quiet.len().saturating_sub(keep);
            self.quiet.drain(..extra);
            if level <= SPEECH_LEVEL {
                return Ok(None);
            }
            self.gate_open = true;
            let held: Vec<i16> = self.quiet.drain(..).collect();
            return self.decode(&held, rate, level);
        }
        self.decode(pcm, rate, level)
    }

    fn finish(&mut self) -> Result<Heard, AsrError> {
        Ok(self.verdict())
    }
}

impl PocketSphinx {
    /// Runs both decoders on `pcm` (the gate is open) and decides at the end of an utterance.
    fn decode(&mut self, pcm: &[i16], rate: u32, level: f64) -> Result<Option<Heard>, AsrError> {
        let Some(d) = &self.main else {
            return Ok(None);
        };
        self.decoded_ms += pcm.len() as u64 * 1000 / u64::from(rate);
        let data: &[i16] = if rate == 8000 {
            self.up.clear();
            // Linear interpolation: Crest's polyphase resampler (flat to 3.4 kHz, nothing above)
            // cut intent accuracy on telephone speech from 30/30 to 8/30 in a side-by-side
            // run; the model was trained on wideband audio and does better with the images.
            upsample_2x(pcm, &mut self.up);
            &self.up
        } else {
            pcm
        };
        // SAFETY: the decoders are live and in an utterance; data is valid for its length.
        let speech = unsafe {
            for g in self.garbage.iter().chain([d]) {
                if ps_process_raw(g.ps, data.as_ptr(), data.len(), 0, 0) < 0 {
                    return Err(AsrError::Engine("decoding failed".into()));
                }
            }
            ps_get_in_speech(d.ps) != 0
        };
        self.loud |= speech && level > SPEECH_LEVEL;
        self.heard_speech |= speech;
        let ended = self.in_speech && !speech;
        self.in_speech = speech;
        if !ended {
            return Ok(None);
        }
        if !self.loud {
            // Line noise the detector took for speech: nobody spoke; keep listening.
            // SAFETY: the decoders are live; ending and restarting an utterance is allowed.
            unsafe {
                for g in self.garbage.iter().chain(self.main.as_ref()) {
                    ps_end_utt(g.ps);
                    ps_start_utt(g.ps);
                }
            }
            self.heard_speech = false;
            self.gate_open = false;
            return Ok(None);
        }
        Ok(Some(self.verdict()))
    }
}
