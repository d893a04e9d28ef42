import type { Dialect } from '../types.js';
import type { MessagesRequest } from './request.js';
import { errorBody } from './response-body.js';
import { toChatRequest } from './to-chat-request.js';

/** The Anthropic Messages API spoken on top of the upstream's chat completions. */
export const messagesDialect: Dialect<MessagesRequest> = { api: 'messages', errorBody, toChatRequest };
