-- expect: :3: error: error called with a table value
-- error() with a value that is not a message.
error({ "not a message" })
