import { z } from "zod";
import { label, storableText } from "./limits.js";

/**
 * What the alerter accepts from Telegram (webhook body, getUpdates result): the fields it reads, bounded so that
 * whatever passes can be stored, relayed as an actor and echoed back. Unknown fields are dropped unread; an update
 * of a kind the bot ignores (edited_message, …) passes with neither `message` nor `callback_query`.
 */

/** Telegram ids are integers up to 52 bits; anything else is not from Telegram. */
const TgId = z.number().int().min(-(2 ** 52)).max(2 ** 52);

export const TelegramUser = z.object({
  id: TgId,
  is_bot: z.boolean().optional(),
  first_name: storableText(256).optional(),
  // It ends up in the actor of an audit row (at most 128 characters there).
  username: label(64).optional(),
});

export const TelegramMessage = z.object({
  message_id: TgId,
  chat: z.object({ id: TgId, type: storableText(32).optional() }),
  from: TelegramUser.optional(),
  // Telegram's own limit for a message's text.
  text: storableText(4096).optional(),
  date: z.number().int().min(0).max(2 ** 40).optional(),
});

export const TelegramCallbackQuery = z.object({
  id: label(256),
  from: TelegramUser,
  message: TelegramMessage.optional(),
  // Telegram's limit for callback_data is 64 bytes.
  data: storableText(64).optional(),
});

export const TelegramUpdate = z.object({
  update_id: z.number().int().min(0).max(2 ** 52),
  message: TelegramMessage.optional(),
  callback_query: TelegramCallbackQuery.optional(),
});
export type TelegramUpdate = z.infer<typeof TelegramUpdate>;
