//! The Node addon vp hands to every child as `VP_RUN_NODE_CLIENT_PATH`.
//! `load()` returns `{ ignoreInput, ignoreOutput, disableCache, getEnv,
//! getEnvs }` (the shape the runner client bundled in Vite 8.3+ calls);
//! the same functions are also exported at top level. A thin layer over
//! `vp_ipc::Client`: under vp every call goes to the runner and a runner
//! error becomes a JS exception; not under vp, ignore/disable do nothing and
//! getEnv/getEnvs read `process.env` (never an exception).

use std::sync::OnceLock;

use neon::prelude::*;
use vp_ipc::{CallError, Client, EnvQuery};

/// One channel per process, shared by the main thread and every worker
/// thread (each loads this module, but the runner connection is per
/// process; the client is thread-safe and fork-aware).
static CLIENT: OnceLock<Option<Client>> = OnceLock::new();

fn client() -> Option<&'static Client> {
    CLIENT
        .get_or_init(|| Client::from_env(client_name()).ok())
        .as_ref()
}

/// `node <script>` from the process arguments, shown by `vp run -v`.
fn client_name() -> String {
    let base = |arg: &std::ffi::OsStr| {
        std::path::Path::new(arg)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| arg.to_string_lossy().into_owned())
    };
    let args: Vec<_> = std::env::args_os().take(2).collect();
    match args.as_slice() {
        [node, script, ..] if !script.to_string_lossy().starts_with('-') => {
            format!("{} {}", base(node), base(script))
        }
        [node, ..] => base(node),
        [] => "node".to_owned(),
    }
}

fn throw_call<'a, T>(cx: &mut FunctionContext<'a>, err: CallError) -> NeonResult<T> {
    cx.throw_error(format!("vp-bridge: {err}"))
}

/// `options.tracked` at argument `index`; absent → true.
fn tracked_option(cx: &mut FunctionContext, index: usize) -> NeonResult<bool> {
    let Some(options) = cx.argument_opt(index) else {
        return Ok(true);
    };
    if options.is_a::<JsUndefined, _>(cx) || options.is_a::<JsNull, _>(cx) {
        return Ok(true);
    }
    let Ok(options) = options.downcast::<JsObject, _>(cx) else {
        return cx.throw_type_error("vp-bridge: options must be an object like { tracked: false }");
    };
    let tracked: Handle<JsValue> = options.get(cx, "tracked")?;
    if tracked.is_a::<JsUndefined, _>(cx) {
        return Ok(true);
    }
    match tracked.downcast::<JsBoolean, _>(cx) {
        Ok(flag) => Ok(flag.value(cx)),
        Err(_) => cx.throw_type_error("vp-bridge: options.tracked must be a boolean"),
    }
}

fn path_argument(cx: &mut FunctionContext) -> NeonResult<String> {
    let path = cx.argument::<JsString>(0)?.value(cx);
    if path.is_empty() {
        return cx.throw_type_error("vp-bridge: path must be a non-empty string");
    }
    Ok(path)
}

fn ignore_input(mut cx: FunctionContext) -> JsResult<JsUndefined> {
    let path = path_argument(&mut cx)?;
    if let Some(client) = client()
        && let Err(err) = client.ignore_input(path)
    {
        return throw_call(&mut cx, err);
    }
    Ok(cx.undefined())
}

fn ignore_output(mut cx: FunctionContext) -> JsResult<JsUndefined> {
    let path = path_argument(&mut cx)?;
    if let Some(client) = client()
        && let Err(err) = client.ignore_output(path)
    {
        return throw_call(&mut cx, err);
    }
    Ok(cx.undefined())
}

fn disable_cache(mut cx: FunctionContext) -> JsResult<JsUndefined> {
    if let Some(client) = client()
        && let Err(err) = client.disable_cache()
    {
        return throw_call(&mut cx, err);
    }
    Ok(cx.undefined())
}

fn get_env(mut cx: FunctionContext) -> JsResult<JsValue> {
    let name = cx.argument::<JsString>(0)?.value(&mut cx);
    let tracked = tracked_option(&mut cx, 1)?;
    let value = match client() {
        Some(client) => match client.get_env(&name, tracked) {
            Ok(value) => value.map(|v| v.to_string_lossy().into_owned()),
            Err(err) => return throw_call(&mut cx, err),
        },
        None => process_env(&mut cx)?
            .into_iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value),
    };
    Ok(match value {
        Some(value) => cx.string(value).upcast(),
        None => cx.undefined().upcast(),
    })
}

fn get_envs(mut cx: FunctionContext) -> JsResult<JsObject> {
    let query = query_argument(&mut cx)?;
    let tracked = tracked_option(&mut cx, 1)?;
    let pairs: Vec<(String, String)> = match client() {
        Some(client) => match client.get_envs(query, tracked) {
            Ok(map) => map
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
            Err(err) => return throw_call(&mut cx, err),
        },
        None => {
            // The runner's own matcher, so a tool sees the same set with
            // and without vp.
            let matcher = match query.matcher() {
                Ok(m) => m,
                Err(err) => return cx.throw_error(format!("vp-bridge: {err}")),
            };
            process_env(&mut cx)?
                .into_iter()
                .filter(|(name, _)| matcher.matches(name.as_bytes()))
                .collect()
        }
    };
    let out = cx.empty_object();
    for (name, value) in pairs {
        let value = cx.string(value);
        out.set(&mut cx, name.as_str(), value)?;
    }
    Ok(out)
}

/// `"VITE_*"` (a glob) or `{ prefix: "VITE_" }`.
fn query_argument(cx: &mut FunctionContext) -> NeonResult<EnvQuery> {
    let query = cx.argument::<JsValue>(0)?;
    if let Ok(glob) = query.downcast::<JsString, _>(cx) {
        return Ok(EnvQuery::Glob(glob.value(cx).into_bytes()));
    }
    if let Ok(object) = query.downcast::<JsObject, _>(cx) {
        let prefix: Handle<JsValue> = object.get(cx, "prefix")?;
        if let Ok(prefix) = prefix.downcast::<JsString, _>(cx) {
            return Ok(EnvQuery::Prefix(prefix.value(cx).into_bytes()));
        }
    }
    cx.throw_type_error("vp-bridge: getEnvs expects a glob string or { prefix: string }")
}

/// The JS-visible environment (`process.env`), which in a worker thread is
/// the worker's own copy, unlike the C environment.
fn process_env(cx: &mut FunctionContext) -> NeonResult<Vec<(String, String)>> {
    let process: Handle<JsObject> = cx.global("process")?;
    let env: Handle<JsObject> = process.get(cx, "env")?;
    let names = env.get_own_property_names(cx)?.to_vec(cx)?;
    let mut pairs = Vec::with_capacity(names.len());
    for name in names {
        let Ok(name) = name.downcast::<JsString, _>(cx) else {
            continue;
        };
        let name = name.value(cx);
        let value: Handle<JsValue> = env.get(cx, name.as_str())?;
        if let Ok(value) = value.downcast::<JsString, _>(cx) {
            pairs.push((name, value.value(cx)));
        }
    }
    Ok(pairs)
}

/// A bridge function as exported to JS.
type Exported = fn(FunctionContext) -> JsResult<JsValue>;

fn exports<'a, C: Context<'a>>(cx: &mut C, target: Handle<'a, JsObject>) -> NeonResult<()> {
    let functions: [(&str, Exported); 5] = [
        ("ignoreInput", |cx| ignore_input(cx).map(|v| v.upcast())),
        ("ignoreOutput", |cx| ignore_output(cx).map(|v| v.upcast())),
        ("disableCache", |cx| disable_cache(cx).map(|v| v.upcast())),
        ("getEnv", get_env),
        ("getEnvs", |cx| get_envs(cx).map(|v| v.upcast())),
    ];
    for (name, f) in functions {
        let f = JsFunction::new(cx, f)?;
        target.set(cx, name, f)?;
    }
    Ok(())
}

/// `load()`: a fresh object with the five bridge functions.
fn load(mut cx: FunctionContext) -> JsResult<JsObject> {
    let api = cx.empty_object();
    exports(&mut cx, api)?;
    Ok(api)
}

#[neon::main]
fn main(mut cx: ModuleContext) -> NeonResult<()> {
    cx.export_function("load", load)?;
    let module = cx.exports_object()?;
    exports(&mut cx, module)
}
