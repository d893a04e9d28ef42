import type { Dialect } from '../types.js';
import type { ResponsesRequest } from './request.js';
import { errorBody } from './response-body.js';
import { toChatRequest } from './to-chat.js';

/** The OpenAI Responses API (`POST /v1/responses`) on top of chat completions. */
export const responsesDialect: Dialect<ResponsesRequest> = {
  api: 'responses',
  errorBody,
  toChatRequest: (body) => toChatRequest(body),
};
