//! One call of a Lua script, written straight into the command Redis receives.
//!
//! The `redis` crate's `ScriptInvocation` first copies each key and argument into a buffer of its
//! own (one allocation each) and then copies them all again into the `EVALSHA` command. A download
//! calls scripts with up to twenty keys and arguments three times (claim, completion, request log
//! record), so [`ScriptCall`] writes them once, into the command itself, and keeps what the crate
//! does around it: `EVALSHA` by the script's SHA-1, and on `NOSCRIPT` (a Redis restarted, a new
//! primary after a failover) `SCRIPT LOAD` and the same command again. On a cluster the command
//! goes where `ScriptInvocation`'s would: to the primary of its first key's slot.

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind, ToRedisArgs};

/// How many arguments a call has room for before its command grows.
const ARGS_ROOM: usize = 12;

/// `EVALSHA <sha1> <number of keys> <keys>... <arguments>...` for one script.
pub struct ScriptCall<'a> {
    script: &'a Script,
    cmd: Cmd,
}

impl<'a> ScriptCall<'a> {
    /// A call of `script` on `keys` (its `KEYS`, in order); arguments follow with [`Self::arg`].
    pub fn new(script: &'a Script, keys: &[&str]) -> Self {
        // Room for the keys and a dozen short arguments, so that the command's buffers are
        // allocated once: docgate's scripts take up to 13, and most are numbers or ids.
        let data = keys.iter().map(|k| k.len()).sum::<usize>() + 64 + ARGS_ROOM * 24;
        let mut cmd = Cmd::with_capacity(3 + keys.len() + ARGS_ROOM, data);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        Self { script, cmd }
    }

    /// Appends one of the script's `ARGV`.
    pub fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// The command, for a pipeline (whose caller answers `NOSCRIPT` with [`Self::load`]).
    pub fn cmd(&self) -> &Cmd {
        &self.cmd
    }

    /// Loads the script into `conn`'s Redis (every primary, on a cluster).
    pub async fn load(&self, conn: &mut impl ConnectionLike) -> RedisResult<()> {
        self.script.load_async(conn).await.map(drop)
    }

    /// Runs the call; a Redis that does not know the script is given it, and asked again.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self.cmd.query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.load(conn).await?;
                self.cmd.query_async(conn).await
            }
            answer => answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_evalsha_with_the_keys_counted_then_the_arguments() {
        let script = Script::new("return 1");
        let mut call = ScriptCall::new(&script, &["a", "bb"]);
        call.arg("x").arg(42u64).arg("");
        let hash = script.get_hash();
        let expected = format!(
            "*8\r\n$7\r\nEVALSHA\r\n$40\r\n{hash}\r\n$1\r\n2\r\n$1\r\na\r\n$2\r\nbb\r\n\
             $1\r\nx\r\n$2\r\n42\r\n$0\r\n\r\n"
        );
        assert_eq!(
            String::from_utf8(call.cmd().get_packed_command()).unwrap(),
            expected
        );
    }
}
